package rtp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
	"weak"
)

// TestSparePairsRestThenServeNewLegs: a closed leg's sockets stay bound
// and drop what arrives; a leg opened before they have rested gets new
// ones; after the rest the oldest pair is taken, with nothing of the old
// phone's queued and no deaf filter left; at most Spares pairs are kept;
// stopping the engine closes them all.
func TestSparePairsRestThenServeNewLegs(t *testing.T) {
	const quiet = 300 * time.Millisecond
	fds := func() int { d, _ := os.ReadDir("/proc/self/fd"); return len(d) }
	before := fds()
	e, err := New(Config{Host: loopback, Pollers: 1, Spares: 3, Quiet: quiet, Descriptors: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var legs []*Conn
	for range 4 {
		c, err := e.Open(newInbox())
		if err != nil {
			t.Fatal(err)
		}
		legs = append(legs, c)
	}
	// The first leg's phone, parked (deaf), still sending when the call ends.
	first := legs[0]
	if err := first.SetDeaf(true, 101); err != nil {
		t.Fatal(err)
	}
	phone, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(first.Local()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range legs {
		c.Close()
	}
	kept := map[netip.AddrPort]bool{}
	for _, c := range legs[:3] {
		kept[c.Local()] = true
	}
	if n := e.spares.len(); n != 3 {
		t.Fatalf("%d spare pairs, want 3 (the limit)", n)
	}
	for seq := range uint16(20) {
		phone.Write(packet(101, seq, "old!"))
		phone.Write(packet(0, seq, "old!"))
	}

	// Too early: a leg of its own.
	r := newInbox()
	early, err := e.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	if kept[early.Local()] {
		t.Fatalf("leg opened on %s, a pair resting for less than %v", early.Local(), quiet)
	}
	early.Close() // the fourth spare would be over the limit: closed

	time.Sleep(quiet)
	r = newInbox()
	next, err := e.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	if next.Local() != first.Local() {
		t.Fatalf("leg opened on %s, want the oldest spare pair %s", next.Local(), first.Local())
	}
	if got := e.Stats().Reused.Load(); got != 1 {
		t.Fatalf("Reused = %d, want 1", got)
	}
	if next.Deaf() {
		t.Fatal("a reused pair is deaf")
	}
	// What the old phone sent while the pair rested is gone; what comes
	// now (audio too: no filter) is the new leg's.
	phone.Write(packet(0, 100, "new!"))
	if p := r.next(t); p.Seq != 100 || string(p.Payload) != "new!" {
		t.Fatalf("new leg read seq %d %q, want seq 100 \"new!\"", p.Seq, p.Payload)
	}
	r.none(t, 100*time.Millisecond)

	next.Close()
	phone.Close()
	cancel()
	<-done
	if d := fds() - before; d != 0 {
		t.Errorf("%d descriptors left once the engine stopped", d)
	}
}

// BenchmarkOpenCloseSpare is a leg opened on a spare pair and closed.
func BenchmarkOpenCloseSpare(b *testing.B) {
	e := startWith(b, Config{Host: loopback, Pollers: 1, Quiet: time.Nanosecond})
	for b.Loop() {
		c, err := e.Open(newInbox())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// TestSparePairKeepsNothingOfItsCall: once a leg is closed, its spare pair
// does not keep the leg's receiver (the whole call behind it) alive.
func TestSparePairKeepsNothingOfItsCall(t *testing.T) {
	e := startWith(t, Config{Host: loopback, Pollers: 1, Spares: 4})
	r := newInbox()
	gone := weak.Make(r)
	c, err := e.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, r = nil, nil
	if e.Spares() != 1 || e.Legs() != 0 {
		t.Fatalf("%d spares, %d legs; want 1, 0", e.Spares(), e.Legs())
	}
	for range 10 {
		runtime.GC()
		if gone.Value() == nil {
			return
		}
	}
	t.Fatal("a spare pair keeps its old leg's receiver alive")
}

// TestSparesGiveWayToLegs: spares never hold descriptors legs need. With
// room for four legs and two spares (3 descriptors a leg, 2 a spare), sixteen: a
// leg ending when the room is short closes its sockets, and a leg opened
// when it is short takes the oldest spare however fresh.
func TestSparesGiveWayToLegs(t *testing.T) {
	e := startWith(t, Config{Host: loopback, Pollers: 1, Spares: 10, Quiet: time.Hour, Descriptors: 3*4 + 2*2})
	open := func() *Conn {
		t.Helper()
		c, err := e.Open(newInbox())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	legs := []*Conn{open(), open(), open(), open()}
	legs[0].Close()
	legs[1].Close()
	if e.Spares() != 2 {
		t.Fatalf("%d spares, want 2", e.Spares())
	}
	legs = append(legs[2:], open(), open()) // room for both: new sockets
	if e.Spares() != 2 || e.Stats().Reused.Load() != 0 {
		t.Fatalf("%d spares, %d reused; want 2, 0", e.Spares(), e.Stats().Reused.Load())
	}
	legs = append(legs, open()) // a fifth leg: the oldest spare, unrested
	if e.Spares() != 1 || e.Stats().Reused.Load() != 1 {
		t.Fatalf("%d spares, %d reused; want 1, 1", e.Spares(), e.Stats().Reused.Load())
	}
	legs = append(legs, open()) // a sixth: the last spare
	legs[0].Close()             // 5 legs and a spare would not fit: closed
	if e.Spares() != 0 || e.Legs() != 5 || e.Stats().Reused.Load() != 2 {
		t.Fatalf("%d spares, %d legs, %d reused; want 0, 5, 2", e.Spares(), e.Legs(), e.Stats().Reused.Load())
	}
}

// TestIdleSparesAreClosed: once the load is gone, the spare pairs are
// closed (their descriptors and memory given back).
func TestIdleSparesAreClosed(t *testing.T) {
	fds := func() int { d, _ := os.ReadDir("/proc/self/fd"); return len(d) }
	e := startWith(t, Config{Host: loopback, Pollers: 1, SpareIdle: 200 * time.Millisecond})
	before := fds()
	for range 5 {
		c, err := e.Open(newInbox())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if n := e.Spares(); n != 5 {
		t.Fatalf("%d spares, want 5", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.Spares() != 0 || fds() != before {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares and %d more descriptors %v after the last leg", e.Spares(), fds()-before, 2*time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
