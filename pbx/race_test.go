package pbx_test

import (
	"fmt"
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
	raceRetrievals(t, retrievalRace{
		client: p.Phone(t, "demo", "201"), parker: p.Phone(t, "demo", "333"),
		left: p.Phone(t, "demo", "202"), right: p.Phone(t, "demo", "200"),
		owner: p, events: p,
	}, 10, 10)
}

// retrievalRace is who takes part in raceRetrievals: the client's calls
// are parked by the parker, left and right race to retrieve each; owner
// is the node whose control plane holds the parks, events the node whose
// events tell the retrievals.
type retrievalRace struct {
	client, parker, left, right *pbxtest.Phone
	owner, events               *pbxtest.PBX
}

// raceRetrievals runs rounds of perRound calls parked on random numbers by
// REFER to *70, each then dialed (*71*N) by left and right at the same
// moment: exactly one of each pair keeps the caller, the other hears "no
// call parked" and is hung up by the PBX, and nothing stays parked.
func raceRetrievals(t *testing.T, r retrievalRace, rounds, perRound int) {
	t.Helper()
	for round := range rounds {
		began := time.Now()
		var callers []*pbxtest.Call
		for range perRound {
			cc, cj := connect(t, r.client, r.parker)
			cj.Park(t, "*70")
			callers = append(callers, cc)
		}
		var numbers []string
		waitFor(t, 5*time.Second, "parks", func() bool {
			numbers = numbers[:0]
			for _, rec := range r.owner.Control().State().ParkedList("demo") {
				numbers = append(numbers, rec.Number)
			}
			return len(numbers) == perRound
		})

		results := make([][2]*pbxtest.Call, perRound)
		errs := make(chan error, 2*perRound)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, n := range numbers {
			for side, ph := range []*pbxtest.Phone{r.left, r.right} {
				wg.Go(func() {
					<-start
					call, err := ph.DialErr(t.Context(), "*71*"+n)
					results[i][side] = call
					if err != nil {
						errs <- fmt.Errorf("number %s: %w", n, err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: dial failed: %v", round, err)
		}

		// Wait until every pair has lost one side, then let a late loser
		// show before counting the winners.
		for i := range numbers {
			waitFor(t, 10*time.Second, "a loser", func() bool { return ended(results[i][0]) || ended(results[i][1]) })
		}
		time.Sleep(300 * time.Millisecond)
		for i, n := range numbers {
			if winners := btoi(!ended(results[i][0])) + btoi(!ended(results[i][1])); winners != 1 {
				t.Fatalf("round %d number %s: %d winners", round, n, winners)
			}
		}
		if got, want := r.events.Events.Count(events.CallRetrieved), (round+1)*perRound; got != want {
			t.Fatalf("after round %d: %d call.retrieved, want %d", round, got, want)
		}
		for i := range results {
			results[i][0].Hangup()
			results[i][1].Hangup()
		}
		for _, cc := range callers {
			cc.ExpectEnded(t, 5*time.Second)
		}
		nothingParked := func() bool { return len(r.owner.Control().State().ParkedList("demo")) == 0 }
		if r.owner == r.events {
			// One node: the parks are gone by the time the callers' ends are.
			if !nothingParked() {
				t.Fatalf("round %d: %d calls still parked", round, len(r.owner.Control().State().ParkedList("demo")))
			}
		} else {
			// Across nodes the owner learns of the ends over NATS.
			waitFor(t, 5*time.Second, "nothing parked on the owner", nothingParked)
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
