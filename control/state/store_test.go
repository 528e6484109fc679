package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
)

// TestIndexesFollowTheirTables: after any mix of writes, every index
// holds exactly its table's rows, and the rows are the stored ones.
func TestIndexesFollowTheirTables(t *testing.T) {
	s := newStore(t)
	for i := range 20 {
		id := fmt.Sprint("c", i)
		mustUpsert(t, s, &Channel{ID: id, Customer: "demo", Account: fmt.Sprint(200 + i%3), State: StateUp})
		if i%4 == 0 {
			if err := s.Park(&Parked{Customer: "demo", Key: fmt.Sprint(300 + i), Channel: id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.UpdateChannel("c1", func(ch *Channel) { ch.Account = "999" }) // moves in the account index
	s.DeleteChannel("c2")
	s.EndChannel("c4") // and its park
	s.MoveParked("demo", "308", &Parked{Key: "slot:1", Kind: KindSlot, Number: "1"})
	s.AddDial(&Dial{ID: "d1", For: "c0", Purpose: DialReturn, Customer: "demo"})
	s.AdoptDialLeg("d1", "out")
	s.AddDial(&Dial{ID: "d2", For: "c3", Purpose: DialExtension, Customer: "demo"})
	s.EndDial("d2")
	s.UpsertRegistration(&Registration{Customer: "demo", Account: "200", Node: "a", Contacts: []events.Contact{{URI: "sip:x"}}})
	s.UpsertRegistration(&Registration{Customer: "demo", Account: "201", Node: "b", Contacts: []events.Contact{{URI: "sip:y"}}})
	s.UpsertRegistration(&Registration{Customer: "demo", Account: "200", Node: "a"}) // none: deleted

	s.mu.RLock()
	defer s.mu.RUnlock()
	tb := &s.t
	n := 0
	for k, set := range tb.byAccount {
		for id, ch := range set {
			n++
			if tb.channels[id] != ch || ch.Customer != k.customer || ch.Account != k.account {
				t.Errorf("account index %v has %s astray", k, id)
			}
		}
	}
	want := 0
	for _, ch := range tb.channels {
		if ch.Account != "" {
			want++
		}
	}
	if n != want || len(tb.channels) != 18 {
		t.Errorf("account index holds %d legs of %d; %d channels, want 18", n, want, len(tb.channels))
	}
	if len(tb.parkedBy) != len(tb.parked) {
		t.Errorf("%d parks by channel, %d by key", len(tb.parkedBy), len(tb.parked))
	}
	for k, p := range tb.parked {
		if tb.parkedBy[p.Channel] != p || tb.parkedCust[k.customer][k.key] != p || p.Key != k.key {
			t.Errorf("park %v astray in its indexes", k)
		}
	}
	if tb.parked[parkKey{"demo", "slot:1"}] == nil || tb.parked[parkKey{"demo", "304"}] != nil {
		t.Error("the moved and the ended parks are not where they should be")
	}
	if len(tb.dials) != 1 || tb.dialsFor["c0"] != tb.dials["d1"] || tb.dialsLeg["out"] != tb.dials["d1"] || len(tb.dialsFor) != 1 {
		t.Errorf("dials %v, by leg dialed for %v, by outbound leg %v", tb.dials, tb.dialsFor, tb.dialsLeg)
	}
	if len(tb.regs) != 1 || len(tb.regsCust["demo"]) != 1 {
		t.Errorf("registrations %v, by customer %v", tb.regs, tb.regsCust)
	}
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustUpsert(t *testing.T, s *Store, ch *Channel) {
	t.Helper()
	if err := s.UpsertChannel(ch); err != nil {
		t.Fatal(err)
	}
}

func TestChannelsCopyOnRead(t *testing.T) {
	s := newStore(t)
	mustUpsert(t, s, &Channel{ID: "a", Customer: "demo", Account: "333", State: StateUp})
	ch := s.Channel("a")
	ch.State = StateEnded
	if got := s.Channel("a").State; got != StateUp {
		t.Fatalf("modifying a read copy changed the store: state %q", got)
	}
	got, err := s.UpdateChannel("a", func(ch *Channel) { ch.State = StateHeld })
	if err != nil || got.State != StateHeld || s.Channel("a").State != StateHeld {
		t.Fatalf("UpdateChannel = %+v, %v", got, err)
	}
	if _, err := s.UpdateChannel("nope", func(*Channel) {}); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("UpdateChannel(missing) err = %v", err)
	}
	if old, _ := s.DeleteChannel("a"); old == nil || s.Channel("a") != nil {
		t.Fatal("DeleteChannel did not delete")
	}
	if old, err := s.DeleteChannel("a"); old != nil || err != nil {
		t.Fatalf("DeleteChannel(missing) = %v, %v", old, err)
	}
}

func TestChannelIndexes(t *testing.T) {
	s := newStore(t)
	mustUpsert(t, s, &Channel{ID: "in", Customer: "demo", Direction: events.Inbound, State: StateUp, Peer: "out"})
	mustUpsert(t, s, &Channel{ID: "out", Customer: "demo", Account: "333", Direction: events.Outbound, State: StateUp, Peer: "in"})
	mustUpsert(t, s, &Channel{ID: "x", Customer: "acme", Account: "333", State: StateUp})
	if got := s.ChannelsByAccount("demo", "333"); len(got) != 1 || got[0].ID != "out" {
		t.Fatalf("ChannelsByAccount = %+v", got)
	}
	if got := len(s.Channels()); got != 3 {
		t.Fatalf("Channels: %d", got)
	}
}

func TestHeldChannel(t *testing.T) {
	s := newStore(t)
	t0 := time.Now()
	// John (333) talks with the client and holds.
	mustUpsert(t, s, &Channel{ID: "client", Customer: "demo", State: StateUp, Peer: "john", Created: t0})
	mustUpsert(t, s, &Channel{ID: "john", Customer: "demo", Account: "333", State: StateUp, Peer: "client", Created: t0})
	if s.HeldChannel("demo", "333") != nil {
		t.Fatal("HeldChannel before hold")
	}
	s.UpdateChannel("john", func(ch *Channel) { ch.State = StateHeld })
	if got := s.HeldChannel("demo", "333"); got == nil || got.ID != "john" {
		t.Fatalf("HeldChannel = %+v", got)
	}
	if s.HeldChannel("acme", "333") != nil {
		t.Fatal("HeldChannel crossed customers")
	}
	// A newer held call wins.
	mustUpsert(t, s, &Channel{ID: "client2", Customer: "demo", State: StateUp, Peer: "john2", Created: t0.Add(time.Second)})
	mustUpsert(t, s, &Channel{ID: "john2", Customer: "demo", Account: "333", State: StateHeld, Peer: "client2", Created: t0.Add(time.Second)})
	if got := s.HeldChannel("demo", "333"); got == nil || got.ID != "john2" {
		t.Fatalf("HeldChannel = %+v, want john2", got)
	}
	// A parked peer does not count.
	if err := s.Park(&Parked{Customer: "demo", Key: "333", Channel: "client2"}); err != nil {
		t.Fatal(err)
	}
	if got := s.HeldChannel("demo", "333"); got == nil || got.ID != "john" {
		t.Fatalf("HeldChannel = %+v, want john", got)
	}
}

func TestParkAndClaim(t *testing.T) {
	s := newStore(t)
	for _, id := range []string{"c1", "c2", "c3"} {
		mustUpsert(t, s, &Channel{ID: id, Customer: "demo", State: StateUp})
	}
	if err := s.Park(&Parked{Customer: "demo", Key: "555", Channel: "gone"}); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("parking a missing channel: %v", err)
	}
	p := &Parked{Customer: "demo", Key: "333", Channel: "c1", Kind: KindExtension, Number: "333"}
	if err := s.Park(p); err != nil {
		t.Fatal(err)
	}
	if err := s.Park(&Parked{Customer: "demo", Key: "333", Channel: "c2"}); !errors.Is(err, ErrNumberBusy) {
		t.Fatalf("second park on 333: %v", err)
	}
	if err := s.Park(&Parked{Customer: "demo", Key: "444", Channel: "c1"}); !errors.Is(err, ErrAlreadyParked) {
		t.Fatalf("parking c1 twice: %v", err)
	}
	// Same key, other customer: independent.
	if err := s.Park(&Parked{Customer: "acme", Key: "333", Channel: "c3"}); err != nil {
		t.Fatal(err)
	}
	if got := s.ParkedByChannel("c1"); got == nil || got.Key != "333" || got.Customer != "demo" {
		t.Fatalf("ParkedByChannel = %+v", got)
	}
	if got := s.ParkedList("demo"); len(got) != 1 {
		t.Fatalf("ParkedList(demo) = %+v", got)
	}
	if got := s.ParkedCount(); got != 2 {
		t.Fatalf("ParkedCount = %d", got)
	}
	got, err := s.ClaimParked("demo", "333")
	if err != nil || got.Channel != "c1" {
		t.Fatalf("ClaimParked = %+v, %v", got, err)
	}
	if _, err := s.ClaimParked("demo", "333"); !errors.Is(err, ErrNotParked) {
		t.Fatalf("second claim: %v", err)
	}
	if s.Parked("acme", "333") == nil {
		t.Fatal("claim in demo removed acme's park")
	}
	if p, err := s.UnparkChannel("c3"); err != nil || p.Customer != "acme" {
		t.Fatalf("UnparkChannel = %+v, %v", p, err)
	}
	if _, err := s.UnparkChannel("c3"); !errors.Is(err, ErrNotParked) {
		t.Fatalf("UnparkChannel twice: %v", err)
	}
}

// TestClaimRace fires 100 pairs of concurrent claims of the same key: each
// pair has exactly one winner.
func TestClaimRace(t *testing.T) {
	s := newStore(t)
	const pairs = 100
	for i := range pairs {
		key := strconv.Itoa(1000 + i)
		mustUpsert(t, s, &Channel{ID: "c" + key, Customer: "demo", State: StateParked})
		if err := s.Park(&Parked{Customer: "demo", Key: key, Channel: "c" + key}); err != nil {
			t.Fatal(err)
		}
	}
	wins := make([]atomic.Int32, pairs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range pairs {
		key := strconv.Itoa(1000 + i)
		for range 2 {
			wg.Go(func() {
				<-start
				p, err := s.ClaimParked("demo", key)
				switch {
				case err == nil && p.Channel == "c"+key:
					wins[i].Add(1)
				case errors.Is(err, ErrNotParked):
				default:
					t.Errorf("claim %s: %+v, %v", key, p, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	for i := range wins {
		if n := wins[i].Load(); n != 1 {
			t.Errorf("pair %d: %d winners, want exactly 1", i, n)
		}
	}
	if n := s.ParkedCount(); n != 0 {
		t.Errorf("%d parks left after claims", n)
	}
}

func TestRandomNumber(t *testing.T) {
	s := newStore(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	// Fill every 1-digit number: each draw must be new, then ErrNoNumber.
	for range 9 {
		n, err := s.RandomNumber("demo", 1, rnd)
		if err != nil {
			t.Fatal(err)
		}
		if seen[n] || n == "0" || len(n) != 1 {
			t.Fatalf("RandomNumber returned %q (seen %v)", n, seen)
		}
		seen[n] = true
		mustUpsert(t, s, &Channel{ID: "c" + n, Customer: "demo", State: StateParked})
		if err := s.Park(&Parked{Customer: "demo", Key: RandomKey(n), Channel: "c" + n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RandomNumber("demo", 1, rnd); !errors.Is(err, ErrNoNumber) {
		t.Fatalf("full: %v", err)
	}
	// Other customers are unaffected.
	if _, err := s.RandomNumber("acme", 1, rnd); err != nil {
		t.Fatal(err)
	}
	n, err := s.RandomNumber("demo", 4, rnd)
	if err != nil || len(n) != 4 || n[0] == '0' {
		t.Fatalf("4 digits: %q, %v", n, err)
	}
	if _, err := s.RandomNumber("demo", 0, rnd); err == nil {
		t.Fatal("0 digits accepted")
	}
}

func TestRegistrations(t *testing.T) {
	s := newStore(t)
	r := &Registration{Customer: "demo", Account: "333", Contacts: []events.Contact{{URI: "sip:333@127.0.0.1:5070"}}}
	if err := s.UpsertRegistration(r); err != nil {
		t.Fatal(err)
	}
	r.Contacts[0].URI = "changed"
	got := s.Registration("demo", "333", "")
	if got == nil || got.Contacts[0].URI != "sip:333@127.0.0.1:5070" {
		t.Fatalf("Registration = %+v", got)
	}
	if s.Registration("acme", "333", "") != nil {
		t.Fatal("registration crossed customers")
	}
	if err := s.UpsertRegistration(&Registration{Customer: "demo", Account: "333"}); err != nil {
		t.Fatal(err)
	}
	if s.Registration("demo", "333", "") != nil {
		t.Fatal("empty contacts did not delete")
	}
}

// TestMoveParked: a move takes the call from one key to a free one in one
// step; observers see it leave, then arrive; of a move and a claim of the
// same call exactly one wins.
func TestMoveParked(t *testing.T) {
	s := newStore(t)
	var mu sync.Mutex
	var seen []string
	s.OnParked(func(p *Parked, parked bool) {
		mu.Lock()
		seen = append(seen, fmt.Sprint(p.Key, " ", parked))
		mu.Unlock()
	})
	for _, id := range []string{"c1", "c2"} {
		mustUpsert(t, s, &Channel{ID: id, Customer: "demo", State: StateUp})
	}
	due := time.Now().Add(time.Minute)
	for _, p := range []*Parked{
		{Customer: "demo", Key: SlotKey("1"), Kind: KindSlot, Number: "1", Channel: "c1", Due: due},
		{Customer: "demo", Key: SlotKey("2"), Kind: KindSlot, Number: "2", Channel: "c2"},
	} {
		if err := s.Park(p); err != nil {
			t.Fatal(err)
		}
	}
	to := &Parked{Key: SlotKey("3"), Kind: KindSlot, Number: "3", Code: "713"}
	if _, err := s.MoveParked("demo", SlotKey("1"), &Parked{Key: SlotKey("2")}); !errors.Is(err, ErrNumberBusy) {
		t.Fatalf("move onto a busy slot: %v", err)
	}
	if _, err := s.MoveParked("demo", SlotKey("9"), to); !errors.Is(err, ErrNotParked) {
		t.Fatalf("move from a free slot: %v", err)
	}
	mu.Lock()
	seen = nil
	mu.Unlock()
	p, err := s.MoveParked("demo", SlotKey("1"), to)
	if err != nil || p.Key != SlotKey("3") || p.Code != "713" || p.Channel != "c1" || !p.Due.Equal(due) {
		t.Fatalf("move: %+v %v", p, err)
	}
	mu.Lock()
	got := fmt.Sprint(seen)
	mu.Unlock()
	if want := []string{SlotKey("1") + " false", SlotKey("3") + " true"}; got != fmt.Sprint(want) {
		t.Fatalf("observers saw %v, want %v", got, want)
	}
	if s.Parked("demo", SlotKey("1")) != nil || s.ParkedByChannel("c1").Key != SlotKey("3") {
		t.Fatal("the move left the old spot or lost the new one")
	}
	// A move and a claim race for c2: one winner.
	for range 50 {
		if q := s.ParkedByChannel("c2"); q != nil {
			if _, err := s.ClaimParked("demo", q.Key); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Park(&Parked{Customer: "demo", Key: SlotKey("2"), Kind: KindSlot, Number: "2", Channel: "c2"}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var wins atomic.Int32
		wg.Go(func() {
			if _, err := s.MoveParked("demo", SlotKey("2"), &Parked{Key: SlotKey("4"), Kind: KindSlot, Number: "4"}); err == nil {
				wins.Add(1)
			}
		})
		wg.Go(func() {
			if _, err := s.ClaimParked("demo", SlotKey("2")); err == nil {
				wins.Add(1)
			}
		})
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d winners", wins.Load())
		}
		if q := s.ParkedByChannel("c2"); q != nil {
			if _, err := s.ClaimParked("demo", q.Key); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRetrieveIsOneWinner(t *testing.T) {
	s := newStore(t)
	for _, id := range []string{"parked", "manual", "return"} {
		if err := s.UpsertChannel(&Channel{ID: id, Customer: "c", State: StateRinging}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Park(&Parked{Customer: "c", Key: SlotKey("1"), Channel: "parked"}); err != nil {
		t.Fatal(err)
	}
	// The automatic return rings: its answer races a manual retrieval.
	if err := s.AddDial(&Dial{ID: "d1", For: "parked", Customer: "c", Purpose: DialReturn, Leg: "return"}); err != nil {
		t.Fatal(err)
	}
	var wins []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, leg := range []string{"manual", "return"} {
		wg.Go(func() {
			var err error
			if leg == "return" {
				_, _, err = s.AnswerDial("d1", leg)
			} else {
				_, err = s.Retrieve("parked", leg)
			}
			if err == nil {
				mu.Lock()
				wins = append(wins, leg)
				mu.Unlock()
			} else if err != ErrNotParked {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("winners %v, want exactly one", wins)
	}
	p, w := s.Channel("parked"), s.Channel(wins[0])
	if p.Peer != wins[0] || w.Peer != "parked" || p.State != StateUp || w.State != StateUp {
		t.Fatalf("after Retrieve: parked %+v, winner %+v", p, w)
	}
	if s.ParkedByChannel("parked") != nil {
		t.Fatal("still parked after Retrieve")
	}
	if s.DialCount() != 0 {
		t.Fatal("the return's dial still pending after the race")
	}
	if err := s.Connect("parked", "gone"); err != ErrNoChannel {
		t.Fatalf("Connect with a leg gone: %v", err)
	}
}

func TestDialsOnePerLegAndOneOutcome(t *testing.T) {
	s := newStore(t)
	for _, id := range []string{"caller", "out"} {
		if err := s.UpsertChannel(&Channel{ID: id, Customer: "c", State: StateRinging}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddDial(&Dial{ID: "d1", For: "caller", Customer: "c", Purpose: DialExtension}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDial(&Dial{ID: "d2", For: "caller", Customer: "c", Purpose: DialExtension}); err != ErrDialPending {
		t.Fatalf("second dial for one leg: %v", err)
	}
	if d := s.AdoptDialLeg("d1", "out"); d == nil || d.Leg != "out" || s.DialByLeg("out") == nil {
		t.Fatalf("adopt: %+v", d)
	}
	if d := s.AdoptDialLeg("d1", "other"); d != nil {
		t.Fatalf("a dial took a second leg: %+v", d)
	}
	if _, _, err := s.AnswerDial("d1", "out"); err != nil {
		t.Fatal(err)
	}
	if a, b := s.Channel("caller"), s.Channel("out"); a.Peer != "out" || b.Peer != "caller" || a.State != StateUp || b.State != StateUp {
		t.Fatalf("after the answer: %+v %+v", a, b)
	}
	if _, err := s.EndDial("d1"); err != ErrNoDial {
		t.Fatalf("a second outcome: %v", err)
	}
	// A return whose call was taken meanwhile: the dial ends, nothing else.
	if err := s.AddDial(&Dial{ID: "d3", For: "gone", Customer: "c", Purpose: DialReturn}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AnswerDial("d3", "out"); err != ErrNotParked {
		t.Fatalf("return of a call no longer parked: %v", err)
	}
	if s.DialCount() != 0 || s.Channel("out").Peer != "caller" {
		t.Fatalf("the lost return changed something: %d dials, out %+v", s.DialCount(), s.Channel("out"))
	}
}
