package pbxtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Linphone is a second real softphone, linphonec (Debian linphone-cli),
// registered to the PBX and scripted through its command line: the test
// types commands on its stdin and reads its status lines. In file mode it
// sends a WAV file (a tone) instead of a microphone and records what it
// hears to another, so audio is checked as with the other phones.
type Linphone struct {
	Ext    string
	domain string
	stdin  io.WriteCloser
	heardF string

	mu    sync.Mutex
	lines []string
	seen  int // lines consumed by WaitLine
	wake  chan struct{}
}

// Linphone starts linphonec as customer's account ext, sending a tone of
// freq Hz, and waits until it has registered.
func (p *PBX) Linphone(t testing.TB, customer, ext string, freq float64) *Linphone {
	t.Helper()
	bin := RequireTool(t, "linphonec", "linphone-cli")
	cust := p.Store().Current().Customer(customer)
	if cust == nil || cust.Account(ext) == nil {
		t.Fatalf("no account %s@%s", ext, customer)
	}
	dir := t.TempDir()
	tone := filepath.Join(dir, "tone.wav")
	writeToneWAV(t, tone, freq, 5*time.Minute)
	l := &Linphone{Ext: ext, domain: cust.Domain, heardF: filepath.Join(dir, "heard.wav"), wake: make(chan struct{}, 1)}
	rtp := freePortRange(t, 10)
	rc := fmt.Sprintf(`[sip]
sip_port=%d
sip_tcp_port=0
sip_tls_port=0
register_only_when_network_is_up=0
default_proxy=0
[proxy_0]
reg_proxy=<sip:%s;transport=udp>
reg_route=<sip:%s;transport=udp;lr>
reg_identity=sip:%s@%s
reg_expires=3600
reg_sendregister=1
[auth_info_0]
username=%s
passwd=%s
realm=%s
domain=%s
[rtp]
audio_rtp_port=%d-%d
[video]
enabled=0
capture=0
display=0
[sound]
echocancellation=0
`, FreePort(t), p.Addr, p.Addr, ext, cust.Domain, ext, cust.Account(ext).Password, cust.Domain, cust.Domain, rtp, rtp+9)
	rcFile := filepath.Join(dir, "linphonerc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", rcFile)
	// Its database and certificates go to a HOME of its own.
	cmd.Env = append(os.Environ(), "HOME="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	l.stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go l.read(out)
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_, _ = io.WriteString(stdin, "quit\n")
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("linphonec %s output:\n%s", ext, l.Output())
		}
	})
	// linphonec cannot bind its SIP port dual-stack here; IPv4 it is.
	l.Command(t, "ipv6 disable", "ipv6 use disabled")
	l.Command(t, "soundcard use files", "Using wav files")
	l.Command(t, "play "+tone, "")
	l.Command(t, "record "+l.heardF, "")
	deadline := time.Now().Add(15 * time.Second)
	for len(p.Core().Registrar().Contacts(customer, ext)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("linphonec %s did not register within 15 s\n%s", ext, l.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l
}

func (l *Linphone) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		// The prompt precedes whatever is printed while it waits.
		l.lines = append(l.lines, strings.TrimPrefix(sc.Text(), "linphonec> "))
		l.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Output is everything linphonec printed.
func (l *Linphone) Output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Command types a command; with want set it waits for a line containing it.
func (l *Linphone) Command(t testing.TB, command, want string) string {
	t.Helper()
	if _, err := io.WriteString(l.stdin, command+"\n"); err != nil {
		t.Fatalf("linphonec %s: %v", command, err)
	}
	if want == "" {
		return ""
	}
	return l.WaitLine(t, want, 10*time.Second)
}

// WaitLine waits for an output line, printed since the last one waited
// for, that contains s.
func (l *Linphone) WaitLine(t testing.TB, s string, within time.Duration) string {
	t.Helper()
	timeout := time.After(within)
	for {
		l.mu.Lock()
		for l.seen < len(l.lines) {
			line := l.lines[l.seen]
			l.seen++
			if strings.Contains(line, s) {
				l.mu.Unlock()
				return line
			}
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-time.After(50 * time.Millisecond):
		case <-timeout:
			t.Fatalf("linphonec %s: no %q within %s\n%s", l.Ext, s, within, l.Output())
		}
	}
}

// Dial calls number and waits until the call is connected.
func (l *Linphone) Dial(t testing.TB, number string) {
	t.Helper()
	l.Command(t, "call "+number, "")
	l.WaitLine(t, "connected.", 10*time.Second)
}

// Transfer blind-transfers the current call's other party to number
// (REFER), the way a phone's Park key parks it, and waits until linphone
// has let the call go.
func (l *Linphone) Transfer(t testing.TB, number string) {
	t.Helper()
	l.Command(t, "transfer sip:"+number+"@"+l.domain, "")
	l.WaitLine(t, "ended", 10*time.Second)
}

// Hangup ends the current call.
func (l *Linphone) Hangup(t testing.TB) {
	t.Helper()
	l.Command(t, "terminate", "")
}

// ExpectTone waits until linphone hears freq.
func (l *Linphone) ExpectTone(t testing.TB, freq float64, within time.Duration) {
	t.Helper()
	expectTone(t, "linphonec "+l.Ext, func(d time.Duration) []int16 { return wavTail(l.heardF, d) }, freq, within)
}
