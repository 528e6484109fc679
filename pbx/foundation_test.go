package pbx_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestCallEventsInOrder: a NATS subscriber sees the caller's leg go through
// started, answered, held, resumed, ended, with customer, call id, parties
// and timestamps.
func TestCallEventsInOrder(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	hold(t, p, ca)
	ca.Unhold(t)
	p.Events.NextWithin(t, 3*time.Second, events.CallResumed, pbxtest.Customer("demo"))
	ca.Hangup()
	cb.ExpectEnded(t, 5*time.Second)
	first := p.Events.Wait(t, 3*time.Second, "started", func(e *events.Event) bool {
		return e.Type == events.CallStarted && e.Direction == events.Inbound && e.Account == "200"
	})
	p.Events.Wait(t, 3*time.Second, "ended", func(e *events.Event) bool {
		return e.Type == events.CallEnded && e.Call == first.Call
	})
	var seq []string
	var last time.Time
	for _, e := range p.Events.All() {
		if e.Call != first.Call {
			continue
		}
		if e.Customer != "demo" || e.From.User != "200" || e.To.User != "201" || e.Time.IsZero() {
			t.Errorf("%s: customer %q from %q to %q time %v", e.Type, e.Customer, e.From.User, e.To.User, e.Time)
		}
		if e.Time.Before(last) {
			t.Errorf("%s goes back in time", e.Type)
		}
		last = e.Time
		seq = append(seq, e.Type)
	}
	want := []string{events.CallStarted, events.CallAnswered, events.CallHeld, events.CallResumed, events.CallEnded}
	if strings.Join(seq, ",") != strings.Join(want, ",") {
		t.Fatalf("events of the caller's leg:\n got %v\nwant %v", seq, want)
	}
	// Both legs carry the conversation's id, the caller's leg: that is
	// what consumers order one call's events by.
	legs := map[string]bool{}
	for _, e := range p.Events.All() {
		if e.Call == first.Call || e.Peer == first.Call || e.DialedFor == first.Call {
			legs[e.Call] = true
			if e.Linked != first.Call {
				t.Errorf("%s of leg %s (%s): linked %q, want %q", e.Type, e.Call, e.Direction, e.Linked, first.Call)
			}
		}
	}
	if len(legs) != 2 {
		t.Errorf("legs of the call: %v", legs)
	}
}

// TestTrunkCallsDID: a carrier INVITE (identified by its source address, no
// digest) to the DID rings the extension behind it.
func TestTrunkCallsDID(t *testing.T) {
	p := pbxtest.Start(t)
	reception := p.Phone(t, "demo", "200")
	carrier := pbxtest.NewRawPhone(t, p.Addr, "+15557654321", "demo.callpark.test")
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- reception.Answer(t, 5*time.Second) }()
	cc := carrier.Dial(t, "+15551230000")
	cr := <-answered
	if from := cr.Invite().From().Address.User; from != "+15557654321" {
		t.Errorf("reception sees caller %q", from)
	}
	talk(t, cc, cr)
	// A trunk may not reach service codes or unknown numbers.
	if _, err := carrier.DialErr(t.Context(), "*71333"); pbxtest.StatusOf(err) == 0 {
		t.Fatal("trunk reached a service code")
	}
}

// TestBrokenDialplanKeepsServing: a broken file is refused with file:line
// and the previous version keeps serving calls; a fixed file applies live.
func TestBrokenDialplanKeepsServing(t *testing.T) {
	dir := writeDialplans(t, "")
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	file := filepath.Join(dir, "customers", "demo.yaml")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(orig), "parking: true", "parkng: true", 1)
	if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	err = p.Store().Reload()
	if err == nil || !strings.Contains(err.Error(), "demo.yaml:") || !strings.Contains(err.Error(), "parkng") {
		t.Fatalf("reload error %v, want file:line naming parkng", err)
	}
	t.Logf("refused: %v", err)
	// The old demo still serves.
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)

	// A valid change applies live: a new account appears.
	fixed := strings.Replace(string(orig), "accounts:", "accounts:\n  - extension: \"250\"\n    password: \"secret250\"", 1)
	if err := os.WriteFile(file, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Store().Current().Customer("demo").Account("250") == nil {
		if time.Now().After(deadline) {
			t.Fatal("valid change not applied by the watcher")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Phone(t, "demo", "250")
}

// rawSIP sends one datagram to the PBX and returns the first response line.
func rawSIP(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg = strings.ReplaceAll(msg, "LOCAL", local)
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if !strings.Contains(line, " 100 ") {
			return line
		}
	}
}

func invite(body string, extra string) string {
	return fmt.Sprintf(`INVITE sip:201@demo.callpark.test SIP/2.0
Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-%d
From: <sip:200@demo.callpark.test>;tag=abc
To: <sip:201@demo.callpark.test>
Call-ID: bad-%d@test
CSeq: 1 INVITE
Contact: <sip:200@LOCAL>
Max-Forwards: 70
%sContent-Length: %d

%s`, time.Now().UnixNano(), time.Now().UnixNano(), extra, len(strings.ReplaceAll(body, "\n", "\r\n")), body)
}

// TestMalformedSIPGetsClearAnswers: bad requests get the right 4xx and
// never reach the dialplan.
func TestMalformedSIPGetsClearAnswers(t *testing.T) {
	p := pbxtest.Start(t)
	cases := []struct{ name, msg, want string }{
		{"no SDP", invite("", ""), "488"},
		{"garbage SDP", invite("this is not sdp\n", "Content-Type: application/sdp\n"), "400"},
		{"no common codec", invite("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 18\n", "Content-Type: application/sdp\n"), "488"},
		{"wrong content type", invite("hello\n", "Content-Type: text/plain\n"), "415"},
		{"no credentials", invite("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n", "Content-Type: application/sdp\n"), "401"},
		{"REFER outside a call", strings.Replace(strings.Replace(invite("", "Refer-To: <sip:*70333@demo.callpark.test>\n"), "INVITE sip", "REFER sip", 1), "CSeq: 1 INVITE", "CSeq: 1 REFER", 1), "481"},
		{"BYE outside a call", strings.Replace(strings.Replace(strings.Replace(invite("", ""), "INVITE sip", "BYE sip", 1), "CSeq: 1 INVITE", "CSeq: 1 BYE", 1), "<sip:201@demo.callpark.test>\n", "<sip:201@demo.callpark.test>;tag=nope\n", 1), "481"},
		{"no Call-ID", strings.Replace(invite("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n", "Content-Type: application/sdp\n"), "Call-ID:", "X-Call-ID:", 1), "400"},
		{"BYE without To tag", strings.Replace(strings.Replace(invite("", ""), "INVITE sip", "BYE sip", 1), "CSeq: 1 INVITE", "CSeq: 1 BYE", 1), "400"},
	}
	for _, tc := range cases {
		got := rawSIP(t, p.Addr, tc.msg)
		if !strings.Contains(got, " "+tc.want+" ") {
			t.Errorf("%s: got %q, want %s", tc.name, got, tc.want)
		} else {
			t.Logf("%s: %s", tc.name, got)
		}
	}
	if n := len(p.Events.All()); n != 0 {
		t.Errorf("malformed requests produced %d events", n)
	}
}

// TestMetricsEndpoint: /metrics serves the registrations and calls, and
// the Go runtime's and the process's own series (garbage collections,
// resident memory: what a bench and an operator read beside ours). The
// port is the kernel's choice (a port picked free beforehand can be taken
// by a parallel test before the PBX binds it).
func TestMetricsEndpoint(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithMetrics("127.0.0.1:0"))
	p.Phone(t, "demo", "200")
	res, err := http.Get("http://" + p.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, want := range []string{"callpark_registrations 1", "callpark_core_active_legs", "callpark_parked_calls",
		"go_gc_duration_seconds_count", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestSeparateCoreAndControl: the core and the control plane in two
// processes' worth of parts, talking only over NATS.
func TestSeparateCoreAndControl(t *testing.T) {
	natsPort := pbxtest.FreePort(t)
	core := pbxtest.Start(t, pbxtest.WithRole(pbx.RoleCore), func(c *pbx.Config) { c.NATSPort = natsPort })
	url := core.NATSURL()
	ctl := pbxtest.Start(t, pbxtest.WithRole(pbx.RoleControl), pbxtest.WithNATS(url), pbxtest.WithServiceAuth(core))
	if ctl.Core() != nil || core.Control() != nil {
		t.Fatal("roles not separated")
	}
	client := core.Phone(t, "demo", "201")
	john := core.Phone(t, "demo", "333")
	cc, cj := connect(t, client, john)
	talk(t, cc, cj)
	cj.Park(t, "*70333")
	core.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	if n := len(ctl.Control().State().ParkedList("demo")); n != 1 {
		t.Fatalf("control has %d parked calls", n)
	}
}

// TestLameDuck: draining refuses new calls with 503 while calls in progress
// (a parked one included) keep their audio.
func TestLameDuck(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	ca, cb := connect(t, a, b)
	cc, cj := connect(t, a, john)
	cj.Park(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333")) // parked before the drain begins
	p.Core().Drain()
	_, err := john.DialErr(t.Context(), "201")
	if got := pbxtest.StatusOf(err); got != 503 {
		t.Fatalf("new call while draining: %d (%v), want 503", got, err)
	}
	talk(t, ca, cb)
	cc.ExpectAudio(t, 500*time.Millisecond)
}
