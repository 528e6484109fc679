package state

import (
	"strconv"
	"testing"
)

// BenchmarkParkClaim is the hot path of a park+retrieve cycle.
func BenchmarkParkClaim(b *testing.B) {
	s, err := New()
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		id := "c" + strconv.Itoa(i)
		if err := s.UpsertChannel(&Channel{ID: id, Customer: "demo", State: StateParked}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		id := "c" + strconv.Itoa(i%1000)
		if err := s.Park(&Parked{Customer: "demo", Key: "333", Channel: id}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ClaimParked("demo", "333"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeldChannel looks up the held call of a park code's caller among
// many legs.
func BenchmarkHeldChannel(b *testing.B) {
	s, err := New()
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		n := strconv.Itoa(i)
		s.UpsertChannel(&Channel{ID: "x" + n, Customer: "demo", Account: n, State: StateHeld, Peer: "p" + n})
		s.UpsertChannel(&Channel{ID: "p" + n, Customer: "demo", State: StateUp, Peer: "x" + n})
	}
	for b.Loop() {
		if s.HeldChannel("demo", "333") == nil {
			b.Fatal("not found")
		}
	}
}
