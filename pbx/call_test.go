package pbx_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

func TestRegisterPasswords(t *testing.T) {
	p := pbxtest.Start(t)
	ok := p.NewPhone(t, "demo", "200")
	if err := ok.Register(context.Background(), ok.Password, time.Minute); err != nil {
		t.Fatalf("right password: %v", err)
	}
	bad := p.NewPhone(t, "demo", "201")
	err := bad.Register(context.Background(), "wrong", time.Minute)
	if err == nil {
		t.Fatal("wrong password registered")
	}
	t.Logf("wrong password: %v", err)
	if got := len(p.Core().Registrar().Contacts("demo", "201")); got != 0 {
		t.Fatalf("201 has %d bindings after a wrong password", got)
	}
	if got := len(p.Core().Registrar().Contacts("demo", "200")); got != 1 {
		t.Fatalf("200 has %d bindings, want 1", got)
	}
}

func TestCallAudioBothWays(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")

	answered := make(chan *pbxtest.Call, 1)
	go func() {
		// Ring for a moment, as a phone does, then answer. (A 180 and a 200
		// sent back to back can be reordered by sipgo, which handles each
		// message on its own goroutine, and the 180 then dropped.)
		c := b.Ringing(t, 5*time.Second)
		time.Sleep(150 * time.Millisecond)
		c.Answer(t)
		answered <- c
	}()
	var mu sync.Mutex
	var codes []int
	ca, err := a.DialWith(t.Context(), "201", func(r *sip.Response) {
		mu.Lock()
		codes = append(codes, r.StatusCode)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	cb := <-answered
	mu.Lock()
	if !slices.Contains(codes, sip.StatusRinging) {
		t.Errorf("caller saw %v, no 180 Ringing", codes)
	}
	mu.Unlock()

	ca.SendTone(1000)
	cb.SendTone(1400)
	cb.ExpectTone(t, 1000, 3*time.Second)
	ca.ExpectTone(t, 1400, 3*time.Second)

	ca.Hangup()
	cb.ExpectEnded(t, 5*time.Second)
	p.Events.NextWithin(t, 5*time.Second, events.CallEnded, pbxtest.Customer("demo"))
}

func TestCallBusyAndNoAnswer(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")

	go func() {
		c := b.Ringing(t, 5*time.Second)
		_ = c.Reject(sip.StatusBusyHere, "Busy Here")
	}()
	_, err := a.DialErr(context.Background(), "201")
	if got := pbxtest.StatusOf(err); got != sip.StatusBusyHere {
		t.Fatalf("busy: got %d (%v), want 486", got, err)
	}

	// Nobody registered on 202: unavailable at once.
	_, err = a.DialErr(context.Background(), "202")
	if got := pbxtest.StatusOf(err); got != sip.StatusTemporarilyUnavailable {
		t.Fatalf("unregistered: got %d (%v), want 480", got, err)
	}

	// Unknown number.
	_, err = a.DialErr(context.Background(), "7777")
	if got := pbxtest.StatusOf(err); got != sip.StatusNotFound {
		t.Fatalf("unknown number: got %d (%v), want 404", got, err)
	}
}

func TestHoldPlaysMusicThenResumes(t *testing.T) {
	p := pbxtest.Start(t)
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- b.Answer(t, 5*time.Second) }()
	ca := a.Dial(t, "201")
	cb := <-answered
	ca.SendTone(1000)
	cb.ExpectTone(t, 1000, 3*time.Second)

	hold(t, p, ca)
	// B hears music on hold, not A's tone.
	cb.ExpectMusic(t, 3*time.Second)
	if err := cb.WaitTone(1000, 300*time.Millisecond); err == nil {
		t.Fatal("held party still hears the holder's tone")
	}

	ca.Unhold(t)
	p.Events.NextWithin(t, 3*time.Second, events.CallResumed, pbxtest.Customer("demo"))
	cb.ExpectTone(t, 1000, 3*time.Second)
	cb.SendTone(1400)
	ca.ExpectTone(t, 1400, 3*time.Second)
}
