package pbx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// dial503 dials number and requires 503 within limit.
func dial503(t *testing.T, ph *pbxtest.Phone, number string, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := ph.DialErr(ctx, number)
	took := time.Since(start)
	if code := pbxtest.StatusOf(err); code != 503 {
		t.Fatalf("dial %s: %d (%v) after %v, want 503", number, code, err, took)
	}
	if took > limit {
		t.Fatalf("503 after %v, want within %v", took, limit)
	}
	t.Logf("503 after %v", took.Round(time.Millisecond))
}

// ownNATS runs a NATS server for a core-only PBX with no control plane,
// so that a test can take it away; it stops when the test ends.
func ownNATS(t *testing.T) *events.Server {
	t.Helper()
	ns, err := events.RunServer(events.ServerConfig{Port: -1, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestNewCallsGet503WithoutControl: a core whose control plane does not
// answer (none running, then NATS gone altogether) refuses new calls with
// 503 within about 2 s instead of leaving them at 100 Trying, and keeps no
// leg of them.
func TestNewCallsGet503WithoutControl(t *testing.T) {
	ns := ownNATS(t)
	p := pbxtest.Start(t, pbxtest.WithRole(pbx.RoleCore), pbxtest.WithNATS(ns.ClientURL()),
		func(c *pbx.Config) { c.DecisionTimeout = 2 * time.Second })
	a := p.Phone(t, "demo", "200")
	p.Phone(t, "demo", "201")

	dial503(t, a, "201", 2500*time.Millisecond) // NATS up, nobody deciding
	ns.Shutdown()
	dial503(t, a, "201", 2500*time.Millisecond) // NATS gone
	deadline := time.Now().Add(5 * time.Second)
	for p.Core().Calls() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d legs left behind", p.Core().Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLateAnswerOfARefusedCallFailsAtOnce: the control plane's answer
// arrives after the core has refused the call for want of a decision, and
// the caller vanished before ACKing the 503 (so the refusal waits out
// Timer H, 32 s). The late answer fails at once instead of waiting behind
// it: a caller who never ACKs must not hold a command up.
func TestLateAnswerOfARefusedCallFailsAtOnce(t *testing.T) {
	ns := ownNATS(t)
	p := pbxtest.Start(t, pbxtest.WithRole(pbx.RoleCore), pbxtest.WithNATS(ns.ClientURL()),
		func(c *pbx.Config) { c.DecisionTimeout = time.Second })
	a := p.Phone(t, "demo", "200")
	p.Phone(t, "demo", "201")

	go func() { _, _ = a.DialErr(t.Context(), "201") }()
	started := p.Events.Next(t, events.CallStarted)
	a.Unplug() // its 503 will never be ACKed
	deadline := time.Now().Add(5 * time.Second)
	for p.Counter("callpark_overload_rejections_total", map[string]string{"reason": "no_decision"}) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call was not refused for want of a decision")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.Core().Calls() == 0 {
		t.Fatal("the refused leg is gone already: nothing waits for its ACK")
	}
	begin := time.Now()
	r := p.Core().HandleCommand(t.Context(), &events.Command{Op: events.OpAnswer, Call: started.Call, Customer: "demo"})
	if took := time.Since(begin); took > time.Second {
		t.Fatalf("late answer took %v, want at once", took.Round(time.Millisecond))
	}
	if r.OK {
		t.Fatal("a refused call was answered")
	}
}

// TestOverloadRefusalKeepsNothing: a call refused for overload is answered
// 503 once, as a stateless UAS answers (RFC 3261 8.2.7): a caller that never
// ACKs gets no retransmissions of it (a transaction kept for its timers
// would resend it at 0.5 s and 1.5 s, and hold its memory for 32 s), its own
// retransmission of the INVITE gets a fresh 503, and its late ACK gets
// nothing.
func TestOverloadRefusalKeepsNothing(t *testing.T) {
	ns := ownNATS(t)
	p := pbxtest.Start(t, pbxtest.WithRole(pbx.RoleCore), pbxtest.WithNATS(ns.ClientURL()))
	ns.Shutdown() // no control plane reachable: every new call is refused
	deadline := time.Now().Add(5 * time.Second)
	for pbxtest.SendHostile(p.Addr, "udp", []pbxtest.Hostile{pbxtest.NewInvite(sippDomain)}, time.Second)[0] != "SIP/2.0 503 Service Unavailable" {
		if time.Now().After(deadline) {
			t.Fatal("new calls are not refused with the control plane gone")
		}
	}

	phone := pbxtest.DialRaw(t, p.Addr)
	invite := pbxtest.NewInvite(sippDomain).Raw
	phone.Send(t, invite)
	got := phone.Answers(2500 * time.Millisecond)
	if lines := pbxtest.StatusLines(got); len(lines) != 1 || !strings.HasPrefix(lines[0], "SIP/2.0 503") {
		t.Fatalf("answers to a refused INVITE never ACKed, over 2.5 s: %q, want one 503", lines)
	}
	phone.Send(t, invite) // the caller's retransmission
	if lines := pbxtest.StatusLines(phone.Answers(time.Second)); len(lines) != 1 || !strings.HasPrefix(lines[0], "SIP/2.0 503") {
		t.Fatalf("answers to the retransmitted INVITE: %q, want one 503", lines)
	}
	// The ACK of the first 503, as the caller sends it: the 503's To (tag
	// included), the INVITE's branch and CSeq number.
	ack := strings.Replace(invite, "INVITE sip:", "ACK sip:", 1)
	ack = strings.Replace(ack, " INVITE\r\n", " ACK\r\n", 1) // CSeq
	ack = strings.Replace(ack, "To: "+header(invite, "To"), "To: "+header(got[0], "To"), 1)
	phone.Send(t, ack)
	if got := phone.Answers(time.Second); len(got) != 0 {
		t.Fatalf("answers to the ACK: %q, want none", pbxtest.StatusLines(got))
	}
	if n := p.Core().Calls(); n != 0 {
		t.Fatalf("%d legs kept for refused calls", n)
	}
}

// TestRefusalsAreAnsweredOnce: a new INVITE refused before it has a
// dialog (no credentials, no offer, a malformed request), never ACKed (a
// forged source address: the answer goes to someone else), is answered
// once. A refusal kept in a transaction was resent ten times over 32 s:
// one forged packet, eleven answers, each larger than the request.
func TestRefusalsAreAnsweredOnce(t *testing.T) {
	p := pbxtest.Start(t)
	invite := pbxtest.NewInvite(sippDomain).Raw
	noOffer, _, _ := strings.Cut(invite, "Content-Type:")
	noOffer += "Content-Length: 0\r\n\r\n"
	for _, c := range []struct{ name, raw, want string }{
		{"without credentials", invite, "SIP/2.0 401"},
		{"without an offer", noOffer, "SIP/2.0 488"},
		{"with Max-Forwards 0", strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards: 0", 1), "SIP/2.0 483"},
	} {
		phone := pbxtest.DialRaw(t, p.Addr)
		phone.Send(t, c.raw)
		got := pbxtest.StatusLines(phone.Answers(2500 * time.Millisecond))
		if len(got) != 1 || !strings.HasPrefix(got[0], c.want) {
			t.Errorf("answers to an INVITE %s over 2.5 s: %q, want one %s", c.name, got, c.want)
		}
	}
}

// header is the value of the first name header of a SIP message.
func header(msg, name string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestNewCallsGet503WhileSIPQueues: while SIP datagrams wait in the UDP
// socket's receive queue longer than MaxQueueDelay (here any wait at all),
// new calls are refused with 503 at once and keep no leg; registrations,
// retrievals (they end a call the PBX carries) and everything else still
// go through.
func TestNewCallsGet503WhileSIPQueues(t *testing.T) {
	p := pbxtest.Start(t, func(c *pbx.Config) { c.MaxQueueDelay = time.Nanosecond })
	a := p.Phone(t, "demo", "200") // registers
	p.Phone(t, "demo", "201")

	dial503(t, a, "201", time.Second)
	if n := p.Counter("callpark_overload_rejections_total", map[string]string{"reason": "sip_queue"}); n == 0 {
		t.Fatal("the 503 was not for the SIP queue")
	}
	if n := p.Core().Calls(); n != 0 {
		t.Fatalf("%d legs kept for a refused call", n)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	retrieve, err := a.DialErr(ctx, "*71999") // nothing parked there: a prompt says so
	if err != nil {
		t.Fatalf("a retrieval while the SIP queue lags: %v", err)
	}
	retrieve.Hangup()
}

// TestBusyLegsHoldNewCallsBackNotRetrievals: with two legs allowed busy,
// a call in progress gets the next new call 503; once it is parked, its
// caller's leg is on music and no longer counts, so a new call goes
// through; and with that one busy, a retrieval still does.
func TestBusyLegsHoldNewCallsBackNotRetrievals(t *testing.T) {
	p := pbxtest.Start(t, func(c *pbx.Config) { c.MaxActiveLegs = 2 })
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	other := p.Phone(t, "demo", "202")
	doctor := p.Phone(t, "demo", "200")

	cc, cj := connect(t, client, john)
	dial503(t, other, "200", 2*time.Second)

	cj.Park(t, "*70333")
	cj.ExpectEnded(t, 5*time.Second)
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cc.ExpectAudio(t, time.Second) // music on hold

	co, cd := connect(t, other, doctor)
	cr := john.Dial(t, "*71333")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	talk(t, cc, cr)

	for _, c := range []*pbxtest.Call{cr, co} {
		c.Hangup()
	}
	cc.ExpectEnded(t, 5*time.Second)
	cd.ExpectEnded(t, 5*time.Second)
	p.WaitNoLegs(t, 5*time.Second)
}
