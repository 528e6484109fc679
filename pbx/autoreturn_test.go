package pbx_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// returnSlots bounds how many of these tests run at once: each starts a
// PBX and phones on ports picked free beforehand, and too many at once make
// port clashes likely.
var returnSlots = make(chan struct{}, 3)

func parallel(t *testing.T) {
	t.Parallel()
	returnSlots <- struct{}{}
	t.Cleanup(func() { <-returnSlots })
}

// Automatic retrieval end to end: demo's calls return after 1 s and ring
// for 2 s; the edits (old, new) change the rest of demo.yaml.
func autoReturnPBX(t *testing.T, edits ...string) *pbxtest.PBX {
	t.Helper()
	base := []string{"after: 120s", "after: 1s", "dial_timeout: 30s", "dial_timeout: 2s"}
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"), append(base, edits...)...)
	return pbxtest.Start(t, pbxtest.WithDialplans(dir))
}

// parkOwn: client calls parker, who parks the call on its own extension by
// REFER; it returns the client's call and the call.parked event.
func parkOwn(t *testing.T, p *pbxtest.PBX, client, parker *pbxtest.Phone) (*pbxtest.Call, *events.Event) {
	t.Helper()
	cc, cp := connect(t, client, parker)
	cp.Park(t, "*70"+parker.Ext)
	cp.ExpectEnded(t, 5*time.Second)
	e := p.Events.Next(t, events.CallParked, pbxtest.Park(parker.Ext))
	return cc, e
}

// returnRinging is the scene of the return races: 201's call (cc) parked
// by 333 (john) on the default plan, and the automatic return ringing
// john (ring).
func returnRinging(t *testing.T) (p *pbxtest.PBX, john *pbxtest.Phone, cc, ring *pbxtest.Call) {
	t.Helper()
	parallel(t)
	p = autoReturnPBX(t)
	client := p.Phone(t, "demo", "201")
	john = p.Phone(t, "demo", "333")
	cc, _ = parkOwn(t, p, client, john)
	return p, john, cc, john.Ringing(t, 4*time.Second)
}

// checkReturnInvite checks the return's From and Alert-Info.
func checkReturnInvite(t *testing.T, ring *pbxtest.Call, park *events.Park, alertInfo string) {
	t.Helper()
	inv := ring.Invite()
	from := inv.From()
	who := park.Parked.Display
	if who == "" {
		who = park.Parked.User
	}
	if from.DisplayName != "Parked: "+who || from.Address.User != park.Parked.User {
		t.Errorf("return From = %q <%s>, want %q <%s>", from.DisplayName, from.Address.User, "Parked: "+who, park.Parked.User)
	}
	h := inv.GetHeader("Alert-Info")
	switch {
	case alertInfo == "" && h != nil:
		t.Errorf("normal ring sent Alert-Info: %s", h.Value())
	case alertInfo != "" && (h == nil || h.Value() != alertInfo):
		t.Errorf("Alert-Info = %v, want %s", h, alertInfo)
	}
}

func TestAutoReturnDistinctiveRing(t *testing.T) {
	parallel(t)
	p := autoReturnPBX(t, "ring: normal", "ring: distinctive")
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")

	cc, pe := parkOwn(t, p, client, john)
	parkedAt := time.Now()
	ring := john.Ringing(t, 4*time.Second)
	if d := time.Since(parkedAt); d < 700*time.Millisecond {
		t.Fatalf("returned after %s, before the 1s timeout", d)
	}
	checkReturnInvite(t, ring, pe.Park, dialplans.DefaultAlertInfo)
	// The caller keeps the music while the parker's phone rings.
	cc.ExpectAudio(t, 500*time.Millisecond)
	ring.Answer(t)

	ret := p.Events.Next(t, events.CallReturned, pbxtest.Park("333"))
	got := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	if ret.Park.By != "333" || got.Park.By != "333" || got.Call != pe.Call {
		t.Fatalf("returned %+v, retrieved %+v", ret.Park, got.Park)
	}
	if id := cc.WaitIdentity(t, 3*time.Second); !strings.Contains(id, "<sip:333@") {
		t.Errorf("caller shown %q after the return, want 333", id)
	}
	talk(t, cc, ring)
	if l := p.Control().State().ParkedList("demo"); len(l) != 0 {
		t.Fatalf("still parked after the return: %+v", l)
	}
	if n := testutil.ToFloat64(metricVec(t, p, "callpark_returns_total", "demo", "answered")); n != 1 {
		t.Fatalf("callpark_returns_total{answered} = %v", n)
	}
	ring.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
}

// TestAutoReturnNormalRingIgnoresOverrideIdentity is point 7: John's phone
// presents another identity (From display "Acme Sales Desk"), yet the call
// he parked rings back to his account, with no Alert-Info (normal ring).
func TestAutoReturnNormalRingIgnoresOverrideIdentity(t *testing.T) {
	parallel(t)
	p := autoReturnPBX(t)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	john.Display = "Acme Sales Desk"
	other := p.Phone(t, "demo", "202")

	// John calls the client under his override identity...
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- client.Answer(t, 5*time.Second) }()
	cj := john.Dial(t, "201")
	cc := <-answered
	if d := cc.Invite().From().DisplayName; d != "Acme Sales Desk" {
		t.Fatalf("client sees %q, not the override identity", d)
	}
	// ...holds it and parks it on 202's extension (the park code goes out
	// under the override identity too).
	hold(t, p, cj)
	pc := john.Dial(t, "*70202")
	pe := p.Events.Next(t, events.CallParked, pbxtest.Park("202"))
	pc.Hangup() // no need to hear the confirmation to the end
	if pe.Park.Parker != "333" {
		t.Fatalf("parker %q", pe.Park.Parker)
	}
	ring := john.Ringing(t, 4*time.Second)
	checkReturnInvite(t, ring, pe.Park, "")
	other.NoCall(t, 10*time.Millisecond) // not the extension it was parked on
	ring.Answer(t)
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("202"))
	if r.Park.By != "333" {
		t.Fatalf("retrieved by %q", r.Park.By)
	}
	talk(t, cc, ring)
}

// TestAutoReturnRingModeBusyNoAnswerGoodbye: answering mode ring, two
// attempts: busy, then no answer, then the caller hears goodbye.
func TestAutoReturnRingModeBusyNoAnswerGoodbye(t *testing.T) {
	parallel(t)
	p := autoReturnPBX(t, "attempts: 3", "attempts: 2")
	client := p.Phone(t, "demo", "201")
	rec := p.Phone(t, "demo", "200")

	cc, _ := parkOwn(t, p, client, rec)
	ring := rec.Ringing(t, 4*time.Second)
	if err := ring.Reject(486, "Busy Here"); err != nil {
		t.Fatal(err)
	}
	f := p.Events.Nth(t, 5*time.Second, events.CallReturnFailed, 1)
	if f.Reason != "busy" || f.Account != "200" {
		t.Fatalf("first failure: reason %q account %q", f.Reason, f.Account)
	}
	// Still parked under the same number, still hearing music.
	if l := p.Control().State().ParkedList("demo"); len(l) != 1 || l[0].Number != "200" {
		t.Fatalf("parked list after a busy return: %+v", l)
	}
	cc.ExpectAudio(t, 300*time.Millisecond)

	// Second attempt after the timeout: nobody answers within 2 s.
	ring = rec.Ringing(t, 4*time.Second)
	ring.ExpectEnded(t, 4*time.Second)
	f = p.Events.Nth(t, 5*time.Second, events.CallReturnFailed, 2)
	if f.Reason != "no_answer" {
		t.Fatalf("second failure: reason %q", f.Reason)
	}
	g := p.Events.Nth(t, 5*time.Second, events.CallReturnFailed, 3)
	if g.Reason != "gave_up" {
		t.Fatalf("final event: reason %q", g.Reason)
	}
	// Goodbye, then the PBX hangs up.
	n, d := cc.AudioUntilEnd(t, 10*time.Second)
	t.Logf("after giving up: %d packets over %s", n, d)
	if l := p.Control().State().ParkedList("demo"); len(l) != 0 {
		t.Fatalf("still parked after goodbye: %+v", l)
	}
	rec.NoCall(t, 1500*time.Millisecond) // no third attempt
	if n := p.Events.Count(events.CallAbandoned); n != 0 {
		t.Fatalf("%d call.abandoned after goodbye", n)
	}
}

// TestAutoReturnForwardMode: Reception (200) forwards to 202, so returns of
// the calls 200 parked ring 202: busy, no answer, then answered.
func TestAutoReturnForwardMode(t *testing.T) {
	parallel(t)
	p := autoReturnPBX(t, "answering_mode: ring", "answering_mode: forward", `forward_to: ""`, `forward_to: "202"`)
	client := p.Phone(t, "demo", "201")
	rec := p.Phone(t, "demo", "200")
	fwd := p.Phone(t, "demo", "202")

	cc, _ := parkOwn(t, p, client, rec)
	ring := fwd.Ringing(t, 4*time.Second)
	ring.Reject(486, "Busy Here")
	if f := p.Events.Nth(t, 5*time.Second, events.CallReturnFailed, 1); f.Reason != "busy" || f.Account != "202" {
		t.Fatalf("failure 1: %q %q", f.Reason, f.Account)
	}
	ring = fwd.Ringing(t, 4*time.Second)
	ring.ExpectEnded(t, 4*time.Second)
	if f := p.Events.Nth(t, 5*time.Second, events.CallReturnFailed, 2); f.Reason != "no_answer" || f.Code != 480 {
		t.Fatalf("failure 2: %q", f.Reason)
	}
	ring = fwd.Answer(t, 4*time.Second)
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("200"))
	if r.Park.By != "202" {
		t.Fatalf("retrieved by %q", r.Park.By)
	}
	talk(t, cc, ring)
	if n := p.Events.Count(events.CallForwarded); n != 3 {
		t.Fatalf("%d call.forwarded, want 3", n)
	}
	if n := p.Events.Count(events.CallReturned); n != 0 {
		t.Fatalf("call.returned for a forwarded return")
	}
	rec.NoCall(t, 10*time.Millisecond) // the parker's phone never rang
}

// TestAutoReturnRingThenForward: each return rings the parker, then 202.
func TestAutoReturnRingThenForward(t *testing.T) {
	parallel(t)
	p := autoReturnPBX(t, "attempts: 3", "attempts: 2",
		"answering_mode: ring", "answering_mode: ring_then_forward", `forward_to: ""`, `forward_to: "202"`)
	client := p.Phone(t, "demo", "201")
	rec := p.Phone(t, "demo", "200")
	fwd := p.Phone(t, "demo", "202")

	cc, _ := parkOwn(t, p, client, rec)
	// Attempt 1: the parker is busy, 202 does not answer.
	rec.Ringing(t, 4*time.Second).Reject(486, "Busy Here")
	fring := fwd.Ringing(t, 3*time.Second)
	fring.ExpectEnded(t, 4*time.Second)
	// Attempt 2: the parker does not answer, 202 does.
	ring := rec.Ringing(t, 4*time.Second)
	ring.ExpectEnded(t, 4*time.Second)
	fring = fwd.Answer(t, 3*time.Second)
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("200"))
	talk(t, cc, fring)

	var reasons []string
	for _, e := range p.Events.Of(events.CallReturnFailed) {
		reasons = append(reasons, e.Account+":"+e.Reason)
	}
	want := []string{"200:busy", "202:no_answer", "200:no_answer"}
	if len(reasons) != len(want) {
		t.Fatalf("return failures %q, want %q", reasons, want)
	}
	for i := range want {
		if reasons[i] != want[i] {
			t.Fatalf("return failures %q, want %q", reasons, want)
		}
	}
	if n := p.Events.Count(events.CallForwarded); n != 2 {
		t.Fatalf("%d call.forwarded, want 2", n)
	}
}

// TestAutoReturnLosesToManualRetrieval: the return rings; 202 retrieves by
// hand meanwhile. 202 gets the caller, the ring is cancelled.
func TestAutoReturnLosesToManualRetrieval(t *testing.T) {
	p, john, cc, ring := returnRinging(t)
	other := p.Phone(t, "demo", "202")
	cr := other.Dial(t, "*71333")
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	if r.Park.By != "202" {
		t.Fatalf("retrieved by %q", r.Park.By)
	}
	ring.ExpectEnded(t, 3*time.Second) // CANCEL: no ghost call
	talk(t, cc, cr)
	if n := p.Events.Count(events.CallReturned); n != 0 {
		t.Fatal("call.returned although the manual retrieval won")
	}
	john.NoCall(t, 1500*time.Millisecond) // and no new return later
}

// TestAutoReturnRaceAnswerAndRetrieve: the parker answers the return at the
// moment another phone dials the retrieval code: exactly one of them gets
// the caller, the other's call ends.
func TestAutoReturnRaceAnswerAndRetrieve(t *testing.T) {
	p, _, cc, ring := returnRinging(t)
	other := p.Phone(t, "demo", "202")
	manual := make(chan *pbxtest.Call, 1)
	go func() {
		c, err := other.DialErr(context.Background(), "*71333")
		if err != nil {
			t.Errorf("*71333: %v", err)
		}
		manual <- c
	}()
	// The answer may come too late: the manual retrieval won and the
	// return's INVITE was cancelled.
	answerErr := ring.AnswerErr()
	cr := <-manual
	if cr == nil {
		return
	}
	// Whoever the state says got the call keeps the caller, the other is
	// hung up (the retriever after a "not parked" prompt).
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	winner, loser := ring, cr
	if r.Park.By == "202" {
		winner, loser = cr, ring
	}
	t.Logf("retrieved by %s (return answered: %v)", r.Park.By, answerErr)
	switch {
	case answerErr != nil && winner == ring:
		t.Fatalf("the return won but its answer failed: %v", answerErr)
	case answerErr == nil:
		loser.AudioUntilEnd(t, 10*time.Second)
	}
	talk(t, cc, winner)
	if n := p.Events.Count(events.CallRetrieved); n != 1 {
		t.Fatalf("%d call.retrieved", n)
	}
}

// TestAutoReturnCallerHangsUp: the caller gives up while the return rings:
// the ring stops and the park is gone.
func TestAutoReturnCallerHangsUp(t *testing.T) {
	p, john, cc, ring := returnRinging(t)
	cc.Hangup()
	ring.ExpectEnded(t, 3*time.Second)
	p.Events.Next(t, events.CallAbandoned, pbxtest.Park("333"))
	if l := p.Control().State().ParkedList("demo"); len(l) != 0 {
		t.Fatalf("still parked: %+v", l)
	}
	time.Sleep(200 * time.Millisecond)
	for _, e := range p.Events.All() {
		if e.Type == events.CallReturnFailed || e.Type == events.CallReturned {
			t.Fatalf("unexpected %s", e.Type)
		}
	}
	if n := len(p.Control().State().Channels()); n != 0 {
		t.Fatalf("%d legs left in the state", n)
	}
	john.NoCall(t, 1500*time.Millisecond)
}

// TestAutoReturnSurvivesControlRestart is point 8: core and control run
// apart; the control plane restarts while a call is parked, and the return
// still rings the parker on time.
func TestAutoReturnSurvivesControlRestart(t *testing.T) {
	parallel(t)
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		"after: 120s", "after: 3s", "dial_timeout: 30s", "dial_timeout: 2s")
	core := pbxtest.Start(t, pbxtest.WithDialplans(dir), pbxtest.WithRole(pbx.RoleCore))
	stop1 := startControl(t, core, dir)

	client := core.Phone(t, "demo", "201")
	john := core.Phone(t, "demo", "333")
	cc, _ := parkOwn(t, core, client, john)
	parkedAt := time.Now()

	stop1()
	cc.ExpectAudio(t, time.Second) // the core keeps the caller
	startControl(t, core, dir)

	ring := john.Ringing(t, 5*time.Second)
	d := time.Since(parkedAt)
	t.Logf("returned %s after the park", d.Round(10*time.Millisecond))
	if d < 2700*time.Millisecond || d > 4500*time.Millisecond {
		t.Fatalf("returned after %s, want about 3s", d)
	}
	ring.Answer(t)
	r := core.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	if r.Park.By != "333" {
		t.Fatalf("retrieved by %q", r.Park.By)
	}
	talk(t, cc, ring)
}

// startControl runs a control-plane-only callpark against natsURL and
// returns a func that stops it (also called when the test ends).
func startControl(t *testing.T, core *pbxtest.PBX, dir string) (stop func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CALLPARK_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	user, pass := core.NATSCredentials()
	p, err := pbx.New(pbx.Config{Role: pbx.RoleControl, NATSURL: core.NATSURL(), NATSUser: user, NATSPassword: pass,
		Dialplans: dir, ReloadInterval: 100 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("control did not start: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("control did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestSippAutoReturnDistinctive: sipp, registered as the parker, receives
// the automatic return and checks the distinctive Alert-Info and the From
// display with its own regexp actions.
func TestSippAutoReturnDistinctive(t *testing.T) {
	sippBinary(t)
	parallel(t)
	p := autoReturnPBX(t, "ring: normal", "ring: distinctive", "after: 1s", "after: 3s")
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	cc, _ := parkOwn(t, p, client, john)
	// A second phone of John's account, sipp, registers now; the return
	// rings both, sipp answers (John's Go phone never does).
	port := pbxtest.FreePort(t)
	runSipp(t, "register.xml", sippOpts{Remote: p.Addr, Port: port}, account(t, p, "333")...)
	uas := startSipp(t, "uas_return_distinctive.xml", sippOpts{Port: port}, account(t, p, "333")...)
	p.Events.NextWithin(t, 8*time.Second, events.CallReturned, pbxtest.Park("333"))
	cc.Hangup()
	uas.wait(t)
}

// TestAutoReturnForwardToExternalNumber: an account whose answering mode
// forwards to a number outside the customer gets its returned parked calls
// sent out through the customer's trunk.
func TestAutoReturnForwardToExternalNumber(t *testing.T) {
	parallel(t)
	carrierPort := pbxtest.FreePort(t)
	p := autoReturnPBX(t,
		`password: "secret333"`, `password: "secret333"
    answering_mode: forward
    forward_to: "+15559990000"`,
		"address: 127.0.0.1", fmt.Sprintf("address: 127.0.0.1:%d", carrierPort))
	carrier := pbxtest.NewRawPhoneAt(t, p.Addr, "carrier", "demo.callpark.test", carrierPort)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	cc, _ := parkOwn(t, p, client, john)

	out := carrier.Answer(t, 5*time.Second)
	if u := out.Invite().Recipient.User; u != "+15559990000" {
		t.Fatalf("carrier got a call for %q", u)
	}
	p.Events.NextWithin(t, 3*time.Second, events.CallForwarded, pbxtest.Customer("demo"))
	talk(t, cc, out)
	john.NoCall(t, 200*time.Millisecond)
}

// metricVec reads one counter of the PBX's registry by name and label values.
func metricVec(t *testing.T, p *pbxtest.PBX, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := p.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := len(m.GetLabel()) == len(labels)
			for i, l := range m.GetLabel() {
				ok = ok && i < len(labels) && l.GetValue() == labels[i]
			}
			if ok {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return nil
}
