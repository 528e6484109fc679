package pbxtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/internal/syncbuf"
)

// Baresip is a real softphone, baresip, registered to the PBX and driven
// through its ctrl_tcp interface (JSON in netstrings). It sends a sine
// tone (module ausine) and records what it hears (module sndfile), so a
// test can check audio both ways as with the diago phones.
type Baresip struct {
	Ext string
	// RTPPorts is the range baresip's RTP takes (a capture filter).
	RTPPorts [2]int

	t      testing.TB
	conn   net.Conn
	rec    string
	events chan map[string]any
	token  int

	mu   sync.Mutex // guards token and resp
	resp map[string]chan map[string]any
	log  syncbuf.Buffer // baresip's stdout and stderr
}

// BaresipOptions choose how the softphone talks to the PBX.
type BaresipOptions struct {
	// TLS registers over the PBX's TLS listener with SRTP mandatory
	// (mediaenc=srtp-mand); the PBX must run WithTLS.
	TLS bool
	// Tone is the frequency of the sine the phone sends (default 1000 Hz).
	Tone int
}

// RequireTool finds a program the interop tests need, or skips the test;
// under CALLPARK_REQUIRE_PHONES=1 (set by `make test`) a missing one fails.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CALLPARK_REQUIRE_PHONES") == "1" {
			t.Fatalf("%s is required (CALLPARK_REQUIRE_PHONES=1): apt-get install -y %s", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install -y %s)", name, pkg)
	}
	return path
}

// Baresip starts baresip as customer's account ext and waits until it has
// registered.
func (p *PBX) Baresip(t testing.TB, customer, ext string, opts BaresipOptions) *Baresip {
	t.Helper()
	bin := RequireTool(t, "baresip", "baresip")
	cust := p.Store().Current().Customer(customer)
	if cust == nil || cust.Account(ext) == nil {
		t.Fatalf("no account %s@%s", ext, customer)
	}
	if opts.Tone == 0 {
		opts.Tone = 1000
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o755); err != nil {
		t.Fatal(err)
	}
	sipPort := freePortPair(t)
	ctrlPort := FreePort(t)
	rtp := freePortRange(t, 10)
	b := &Baresip{Ext: ext, RTPPorts: [2]int{rtp, rtp + 9}, t: t, rec: rec,
		events: make(chan map[string]any, 256), resp: map[string]chan map[string]any{}}

	conf := []string{
		"poll_method epoll",
		"net_interface 127.0.0.1",
		"sip_listen 127.0.0.1:" + itoa(sipPort),
		"call_local_timeout 120",
		// No sound card: the tone comes from ausine, what is heard goes
		// to sndfile's recording and then to an unconnected bridge.
		"audio_source ausine," + itoa(opts.Tone),
		"audio_player aubridge,nil",
		"audio_alert aubridge,nil",
		"ausrc_srate 48000", "ausrc_channels 2", "auplay_srate 48000", "auplay_channels 2",
		fmt.Sprintf("rtp_ports %d-%d", rtp, rtp+9),
		"module_path /usr/lib/baresip/modules",
		"module g711.so", "module ausine.so", "module aubridge.so", "module srtp.so", "module sndfile.so",
		"module_app account.so", "module_app menu.so", "module_app ctrl_tcp.so",
		"ctrl_tcp_listen 127.0.0.1:" + itoa(ctrlPort),
		"snd_path " + rec,
	}
	account := fmt.Sprintf("<sip:%s@%s>;auth_pass=%s;outbound=\"sip:%s\";regint=3600;audio_codecs=PCMU,PCMA",
		ext, cust.Domain, cust.Account(ext).Password, p.Addr)
	if opts.TLS {
		if p.TLSAddr == "" {
			t.Fatal("Baresip over TLS: the PBX has no TLS listener (WithTLS)")
		}
		// baresip's TLS transport needs a certificate of its own (any will
		// do) and checks the PBX's against sip_cafile.
		pemFile := filepath.Join(dir, "cert.pem")
		certPEM, _ := os.ReadFile(p.Config.TLSCertFile)
		keyPEM, _ := os.ReadFile(p.Config.TLSKeyFile)
		if err := os.WriteFile(pemFile, append(certPEM, keyPEM...), 0o600); err != nil {
			t.Fatal(err)
		}
		conf = append(conf, "sip_cafile "+p.Config.TLSCertFile, "sip_certificate "+pemFile)
		account = fmt.Sprintf("<sip:%s@%s;transport=tls>;auth_pass=%s;outbound=\"sip:%s;transport=tls\";mediaenc=srtp-mand;regint=3600;audio_codecs=PCMU,PCMA",
			ext, cust.Domain, cust.Account(ext).Password, p.TLSAddr)
	}
	for name, body := range map[string]string{"config": strings.Join(conf, "\n") + "\n", "accounts": account + "\n", "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(bin, "-f", dir)
	out := &b.log
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("baresip %s output:\n%s", ext, b.Output())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+itoa(ctrlPort))
		if err == nil {
			b.conn = c
			break
		}
		select {
		case <-exited:
			t.Fatalf("baresip exited at start:\n%s", b.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip control port: %v\n%s", err, b.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { b.conn.Close() })
	go b.read()
	// Registered as the PBX sees it (baresip may have registered before
	// its control connection was up, so its REGISTER_OK can be gone).
	for len(p.Core().Registrar().Contacts(customer, ext)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("baresip %s did not register within 10 s\n%s", ext, b.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

// Output is what baresip printed so far.
func (b *Baresip) Output() string {
	return b.log.String()
}

// read parses the netstrings baresip sends: command responses and events.
func (b *Baresip) read() {
	r := bufio.NewReader(b.conn)
	for {
		lenStr, err := r.ReadString(':')
		if err != nil {
			close(b.events)
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenStr, ":")))
		if err != nil || n < 0 || n > 1<<20 {
			close(b.events)
			return
		}
		msg := make([]byte, n+1) // and the trailing ','
		if _, err := io.ReadFull(r, msg); err != nil {
			close(b.events)
			return
		}
		var m map[string]any
		if json.Unmarshal(msg[:n], &m) != nil {
			continue
		}
		if m["response"] == true {
			tok, _ := m["token"].(string)
			b.mu.Lock()
			ch := b.resp[tok]
			delete(b.resp, tok)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case b.events <- m:
		default: // nobody waits for these
		}
	}
}

// Command runs a baresip command ("dial", "accept", "hangup", "transfer")
// and fails the test unless baresip accepts it.
func (b *Baresip) Command(t testing.TB, command, params string) {
	t.Helper()
	b.mu.Lock()
	b.token++
	tok := "t" + itoa(b.token)
	ch := make(chan map[string]any, 1)
	b.resp[tok] = ch
	b.mu.Unlock()
	msg, _ := json.Marshal(map[string]string{"command": command, "params": params, "token": tok})
	if _, err := fmt.Fprintf(b.conn, "%d:%s,", len(msg), msg); err != nil {
		t.Fatalf("baresip %s: %v", command, err)
	}
	select {
	case m := <-ch:
		if m["ok"] != true {
			t.Fatalf("baresip %s %s: %v", command, params, m["data"])
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("baresip %s %s: no response", command, params)
	}
}

// WaitEvent waits for a baresip event ("CALL_ESTABLISHED", "CALL_CLOSED",
// "CALL_INCOMING", ...) and returns it; other events are passed over.
func (b *Baresip) WaitEvent(t testing.TB, typ string, within time.Duration) map[string]any {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case m, ok := <-b.events:
			if !ok {
				t.Fatalf("baresip %s: control connection closed waiting for %s\n%s", b.Ext, typ, b.Output())
			}
			if m["type"] == typ {
				return m
			}
		case <-timeout:
			t.Fatalf("baresip %s: no %s within %s\n%s", b.Ext, typ, within, b.Output())
		}
	}
}

// Dial calls number and waits until the call is established.
func (b *Baresip) Dial(t testing.TB, number string) {
	t.Helper()
	b.Command(t, "dial", number)
	b.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
}

// Hangup ends the current call.
func (b *Baresip) Hangup(t testing.TB) { t.Helper(); b.Command(t, "hangup", "") }

// heard returns the last d of what baresip has heard in its current (or
// last) call, from sndfile's recording.
func (b *Baresip) heard(d time.Duration) []int16 {
	files, _ := filepath.Glob(filepath.Join(b.rec, "dump-*-dec.wav"))
	if len(files) == 0 {
		return nil
	}
	sort.Strings(files)
	return wavTail(files[len(files)-1], d)
}

// ExpectTone waits until baresip hears freq (the last 300 ms of its call
// audio are that tone).
func (b *Baresip) ExpectTone(t testing.TB, freq float64, within time.Duration) {
	t.Helper()
	expectTone(t, "baresip "+b.Ext, b.heard, freq, within)
}

// ExpectSound waits until baresip hears something that is none of the
// given tones and not silence (music on hold, a prompt).
func (b *Baresip) ExpectSound(t testing.TB, within time.Duration, notTones ...float64) {
	t.Helper()
	expectSound(t, "baresip "+b.Ext, b.heard, within, notTones...)
}

// freePortPair is a free port whose next one is free too (baresip listens
// for TLS on its SIP port + 1).
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := FreePort(t)
		if portFree(p + 1) {
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// freePortRange is an even port, the first of n consecutive free ports below the
// ephemeral range.
func freePortRange(t testing.TB, n int) int {
	t.Helper()
	for range 100 {
		// Even: baresip rounds the RTP port it picks down to an even one,
		// so a range starting odd saw it take the port below the range
		// (and the test's capture filter missed its media).
		first := FreePort(t)
		base := first + first%2
		ok := true
		for i := 0; i < n && ok; i++ {
			if base+i != first {
				_, taken := handedOut.LoadOrStore(base+i, struct{}{})
				ok = !taken
			}
			ok = ok && portFree(base+i)
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func portFree(port int) bool {
	u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		return false
	}
	u.Close()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
