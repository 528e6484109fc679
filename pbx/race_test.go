package pbx_test

import (
	"sync"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestRetrieveRaceOneWinner fires 100 pairs of simultaneous retrievals of
// the same parked call from two phones; each time exactly one phone gets the
// caller and the other hears "no call parked".
func TestRetrieveRaceOneWinner(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	left := p.Phone(t, "demo", "202")
	right := p.Phone(t, "demo", "200")

	const rounds, perRound = 10, 10
	for round := range rounds {
		began := time.Now()
		// Park perRound callers on random numbers by REFER to *70.
		var callers []*pbxtest.Call
		for range perRound {
			cc, cj := connect(t, client, john)
			cj.Park(t, "*70")
			callers = append(callers, cc)
		}
		var numbers []string
		deadline := time.Now().Add(5 * time.Second)
		for len(numbers) < perRound {
			numbers = numbers[:0]
			for _, rec := range p.Control().State().ParkedList("demo") {
				numbers = append(numbers, rec.Number)
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d parked, want %d", round, len(numbers), perRound)
			}
			time.Sleep(20 * time.Millisecond)
		}

		type result struct {
			call *pbxtest.Call
			err  error
		}
		var wg sync.WaitGroup
		results := make([][2]result, perRound)
		start := make(chan struct{})
		for i, n := range numbers {
			for side, ph := range []*pbxtest.Phone{left, right} {
				wg.Go(func() {
					<-start
					c, err := ph.DialErr(t.Context(), "*71*"+n)
					results[i][side] = result{c, err}
				})
			}
		}
		close(start)
		wg.Wait()

		// Losers hear "no call parked" and are hung up by the PBX; winners
		// stay connected. Wait until every pair has lost one side.
		deadline = time.Now().Add(10 * time.Second)
		for i, n := range numbers {
			for _, r := range results[i] {
				if r.err != nil {
					t.Fatalf("round %d number %s: dial failed: %v", round, n, r.err)
				}
			}
			for !ended(results[i][0].call) && !ended(results[i][1].call) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		time.Sleep(300 * time.Millisecond)
		for i, n := range numbers {
			winners := 0
			for _, r := range results[i] {
				if !ended(r.call) {
					winners++
				}
			}
			if winners != 1 {
				t.Fatalf("round %d number %s: %d winners", round, n, winners)
			}
		}
		retrieved := 0
		for _, e := range p.Events.All() {
			if e.Type == events.CallRetrieved {
				retrieved++
			}
		}
		if want := (round + 1) * perRound; retrieved != want {
			t.Fatalf("after round %d: %d call.retrieved events, want %d", round, retrieved, want)
		}
		for i := range results {
			for _, r := range results[i] {
				r.call.Hangup()
			}
		}
		for _, cc := range callers {
			cc.ExpectEnded(t, 5*time.Second)
		}
		if n := len(p.Control().State().ParkedList("demo")); n != 0 {
			t.Fatalf("round %d: %d calls still parked", round, n)
		}
		t.Logf("round %d: %d pairs, one winner each (%s)", round, perRound, time.Since(began).Round(time.Millisecond))
	}
}

func ended(c *pbxtest.Call) bool {
	select {
	case <-c.Ended():
		return true
	default:
		return false
	}
}
