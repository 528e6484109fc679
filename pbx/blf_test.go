package pbx_test

// Parking slots on BLF keys (issue 5): phones watch slot entities (711,
// 712) with dialog-event subscriptions; the lamp follows the slot, one key
// parks (REFER) and retrieves (INVITE).

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// lastLamp waits until every watcher shows entity busy (or free) and
// returns when the last of them got its NOTIFY.
func lastLamp(t *testing.T, ws []*pbxtest.Watcher, entity string, busy bool) (last time.Time, lamps []pbxtest.Lamp) {
	t.Helper()
	for _, w := range ws {
		l := w.WaitLamp(t, entity, busy, 3*time.Second)
		lamps = append(lamps, l)
		if l.At.After(last) {
			last = l.At
		}
	}
	return last, lamps
}

func TestBLFSlots(t *testing.T) {
	t.Parallel()
	p := pbxtest.Start(t)
	p.WaitLampKnown(t, "demo", "711")
	p.WaitLampKnown(t, "demo", "712")

	// Ten phones (two per demo account) watch slots 1 and 2.
	accounts := []string{"200", "201", "202", "333", "999"}
	var watchers []*pbxtest.Watcher
	for i := range 10 {
		w := p.Watcher(t, "demo", accounts[i%len(accounts)])
		for _, entity := range []string{"711", "712"} {
			first := w.Subscribe(t, entity, 0).Notifies()[0]
			if first.State != "terminated" || first.Version != 0 || !strings.HasPrefix(first.SubState, "active;expires=") {
				t.Fatalf("initial NOTIFY of %s: %+v", entity, first)
			}
		}
		watchers = append(watchers, w)
	}
	if n := p.Core().Presence().Count(); n != 20 {
		t.Fatalf("%d subscriptions, want 20", n)
	}

	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	other := p.Phone(t, "demo", "202")

	// John presses the slot 1 key during a call: REFER to 711 parks it.
	cc, cj := connect(t, client, john)
	talk(t, cc, cj)
	sent := time.Now()
	cj.Park(t, "711")
	notified := time.Now()
	last, lamps := lastLamp(t, watchers, "711", true)
	for _, l := range lamps {
		if l.Identity != "sip:201@demo.callpark.test" || !strings.HasPrefix(l.SubState, "active") {
			t.Fatalf("busy lamp: %+v", l)
		}
	}
	// The slot is taken before the REFER's final NOTIFY is sent, so the
	// lamps usually light first (a negative delay).
	t.Logf("10 lamps busy: %s after the REFER was sent; last lamp %s relative to the REFER's final NOTIFY",
		last.Sub(sent).Round(time.Microsecond), last.Sub(notified).Round(time.Microsecond))
	if d := last.Sub(sent); d > 100*time.Millisecond {
		t.Errorf("lamps followed the park after %s, want under 100ms", d)
	}
	for _, w := range watchers {
		if l, _ := w.Lamp("712"); l.Busy() {
			t.Fatalf("slot 2 lit: %+v", l)
		}
	}
	cj.ExpectEnded(t, 5*time.Second)
	cc.ExpectAudio(t, 500*time.Millisecond) // music while parked
	busy := p.Events.NextWithin(t, 3*time.Second, events.SlotBusy, pbxtest.Customer("demo"), pbxtest.Slot("1"))
	if busy.Park.Number != "1" || busy.Park.Kind != "slot" || busy.Park.Code != "711" || busy.Park.Parked.User != "201" {
		t.Fatalf("slot.busy: %+v", busy.Park)
	}

	// A transfer into the occupied slot is refused; the call stays.
	c2 := p.Phone(t, "demo", "200")
	cc2, cj2 := connect(t, c2, john)
	if code := cj2.Transfer(t, "711"); code != 486 {
		t.Fatalf("REFER to the busy slot: final NOTIFY %d, want 486", code)
	}
	talk(t, cc2, cj2)
	cj2.Hangup()
	cc2.ExpectEnded(t, 5*time.Second)

	// Another phone presses the key: INVITE 711 retrieves, audio both ways.
	start := time.Now()
	cr := other.Dial(t, "711")
	last, _ = lastLamp(t, watchers, "711", false)
	t.Logf("10 lamps free %s after the retrieving INVITE", last.Sub(start).Round(time.Microsecond))
	talk(t, cc, cr)
	free := p.Events.NextWithin(t, 3*time.Second, events.SlotFree, pbxtest.Customer("demo"), pbxtest.Slot("1"))
	if free.Park.Parked.User != "201" || free.Call != busy.Call {
		t.Fatalf("slot.free: call %s %+v", free.Call, free.Park)
	}
	for _, w := range watchers {
		if l, _ := w.Lamp("711"); l.State != "terminated" {
			t.Fatalf("slot 1 lamp after retrieval: %+v", l)
		}
	}
	cr.Hangup()
	cc.ExpectEnded(t, 5*time.Second)

	// Pressing the empty slot 2 key: "no call parked", then BYE.
	empty := other.Dial(t, "712")
	n, d := empty.AudioUntilEnd(t, 10*time.Second)
	if n < 25 {
		t.Fatalf("empty slot: %d audio packets over %s, want a prompt", n, d)
	}
	t.Logf("empty slot prompt: %d packets over %s", n, d.Round(10*time.Millisecond))
	for _, w := range watchers {
		if l, _ := w.Lamp("712"); l.Busy() {
			t.Fatalf("slot 2 lit by the empty-slot dial: %+v", l)
		}
	}
}

func TestBLFExpiryUnsubscribeAndDeadPhones(t *testing.T) {
	t.Parallel()
	p := pbxtest.Start(t, func(c *pbx.Config) { c.SubscribeNotifyTimeout = 500 * time.Millisecond })
	p.WaitLampKnown(t, "demo", "711")
	w := p.Watcher(t, "demo", "201")

	// Expiry: a 1 s subscription ends with a last NOTIFY.
	short := w.Subscribe(t, "711", time.Second)
	got := short.WaitNotifies(t, 2, 3*time.Second)
	if got[1].SubState != "terminated;reason=timeout" || got[1].Version != 1 || got[1].State != "terminated" {
		t.Fatalf("expiry NOTIFY: %+v", got[1])
	}
	if took := got[1].At.Sub(got[0].At); took < 800*time.Millisecond || took > 2500*time.Millisecond {
		t.Fatalf("expired after %s, want about 1s", took)
	}

	// Refresh and unsubscribe.
	sub := w.Subscribe(t, "711", time.Hour)
	if code := sub.Refresh(t, 2*time.Hour); code != 200 {
		t.Fatalf("refresh: %d", code)
	}
	if got := sub.WaitNotifies(t, 2, 3*time.Second)[1]; got.Version != 1 || !strings.HasPrefix(got.SubState, "active;expires=7") {
		t.Fatalf("refresh NOTIFY: %+v", got)
	}
	if code := sub.Refresh(t, 0); code != 200 {
		t.Fatalf("unsubscribe: %d", code)
	}
	if got := sub.WaitNotifies(t, 3, 3*time.Second)[2]; got.SubState != "terminated;reason=timeout" || got.Version != 2 {
		t.Fatalf("unsubscribe NOTIFY: %+v", got)
	}
	if code := sub.Refresh(t, time.Hour); code != 481 {
		t.Fatalf("refresh after unsubscribe: %d, want 481", code)
	}
	if n := p.Core().Presence().Count(); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}

	// Phones that vanish: one answers 481, one does not answer at all.
	// The next change drops both; a live one stays.
	gone481 := p.Watcher(t, "demo", "202")
	gone481.Subscribe(t, "7199", 0)
	silent := p.Watcher(t, "demo", "333")
	silent.Subscribe(t, "7199", 0)
	live := w.Subscribe(t, "7199", 0)
	gone481.AnswerNotifies(481)
	silent.AnswerNotifies(-1)
	presence(t, p, "7199", true)
	if l := w.WaitLamp(t, "7199", true, 3*time.Second); l.Identity != "sip:555@demo.callpark.test" {
		t.Fatalf("live lamp: %+v", l)
	}
	deadline := time.Now().Add(3 * time.Second)
	for p.Core().Presence().Count() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.Core().Presence().Count(); n != 1 {
		t.Fatalf("%d subscriptions, want only the live one", n)
	}
	presence(t, p, "7199", false)
	if got := live.WaitNotifies(t, 3, 3*time.Second)[2]; got.State != "terminated" || got.Version != 2 {
		t.Fatalf("live NOTIFY: %+v", got)
	}
}

// presence sets a demo entity's state as the control plane would.
func presence(t testing.TB, p *pbxtest.PBX, entity string, busy bool) {
	t.Helper()
	r := p.Core().HandleCommand(context.Background(), &events.Command{
		Op: events.OpPresence, Customer: "demo", Target: entity, On: busy, From: events.Party{User: "555", Display: "Test"},
	})
	if !r.OK {
		t.Fatalf("presence: %s", r.Error)
	}
}

func TestBLFSubscribeNeedsAuthentication(t *testing.T) {
	t.Parallel()
	p := pbxtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := p.Watcher(t, "demo", "201")
	for _, tc := range []struct {
		name, password string
		want           int
	}{{"no credentials", "", 401}, {"wrong password", "wrong", 403}, {"right password", w.Password, 200}} {
		_, res, err := w.SubscribeWith(ctx, "711", time.Hour, tc.password)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.StatusCode != tc.want {
			t.Fatalf("%s: %d, want %d", tc.name, res.StatusCode, tc.want)
		}
		if tc.want == 401 && res.GetHeader("WWW-Authenticate") == nil {
			t.Fatal("401 without a challenge")
		}
	}
	// Not an account of the customer.
	stranger := p.Watcher(t, "demo", "555")
	if _, res, err := stranger.SubscribeWith(ctx, "711", time.Hour, "secret"); err != nil || res.StatusCode != 403 {
		t.Fatalf("stranger: %v %v", res, err)
	}
	if n := p.Core().Presence().Count(); n != 1 {
		t.Fatalf("%d subscriptions, want 1", n)
	}
}

// BenchmarkBLF1000: 1,000 subscriptions (from 10 phones) on one entity,
// over real UDP; one op is a presence change until every subscription has
// its NOTIFY (received, parsed and answered by the phones). Reports the
// worst op too.
func BenchmarkBLF1000(b *testing.B) {
	p := pbxtest.Start(b)
	const phones, perPhone = 10, 100
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var subs []*pbxtest.Subscription
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range phones {
		w := p.Watcher(b, "demo", []string{"200", "201", "202", "333", "999"}[i%5])
		wg.Go(func() {
			for range perPhone {
				s, res, err := w.SubscribeWith(ctx, "7999", time.Hour, w.Password)
				if err != nil || res.StatusCode != 200 {
					b.Errorf("subscribe: %v %v", res, err)
					return
				}
				mu.Lock()
				subs = append(subs, s)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(subs) != phones*perPhone {
		b.Fatalf("%d subscriptions", len(subs))
	}
	for _, s := range subs {
		if !s.WaitVersion(0, 5*time.Second) {
			b.Fatal("no initial NOTIFY")
		}
	}
	var worst time.Duration
	var all []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		presence(b, p, "7999", i%2 == 0)
		for _, s := range subs {
			if !s.WaitVersion(uint32(i+1), 5*time.Second) {
				b.Fatalf("%s: no NOTIFY version %d", s, i+1)
			}
		}
		d := time.Since(start)
		all = append(all, d)
		worst = max(worst, d)
	}
	b.StopTimer()
	slices.Sort(all)
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	if b.N > 1 {
		b.Logf("%d changes × %d subscriptions: p50 %s, worst %s", b.N, len(subs), all[len(all)/2], worst)
	}
}

// TestSippBLF: sipp, as phone 201, subscribes to slot 1 (711) with digest
// auth and checks the initial NOTIFY (free) and then the confirmed one
// (blf_subscribe.xml), after a second sipp instance, as 333, parks a
// call from a Go phone into the slot with its key (REFER to 711,
// uas_park_refer.xml).
func TestSippBLF(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)
	p.WaitLampKnown(t, "demo", "711")

	blf := startSipp(t, "blf_subscribe.xml", sippOpts{Remote: p.Addr}, append(account(t, p, "201"), "-s", "711")...)
	deadline := time.Now().Add(10 * time.Second)
	for p.Core().Presence().Count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("sipp did not subscribe\n%s", blf.report())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // its initial NOTIFY

	port := pbxtest.FreePort(t)
	registerSipp(t, p, "333", port)
	john := startSipp(t, "uas_park_refer.xml", sippOpts{Port: port, Echo: true},
		append(account(t, p, "333"), "-s", "711")...)
	a := p.Phone(t, "demo", "200")
	ca := a.Dial(t, "333")
	parked := p.Events.NextWithin(t, 8*time.Second, events.CallParked, pbxtest.Customer("demo"))
	checkPark(t, parked, "1", "slot", "711", "333")
	p.Events.NextWithin(t, 3*time.Second, events.SlotBusy, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Slot == "1" })
	john.wait(t)
	blf.wait(t) // confirmed NOTIFY checked, then unsubscribed
	ca.ExpectAudio(t, 500*time.Millisecond)
	if n := p.Core().Presence().Count(); n != 0 {
		t.Fatalf("%d subscriptions after sipp unsubscribed", n)
	}
}
