package registrar

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestNonceCountsTakeLittleRoom: a nonce in use costs its count and its
// identity in the map, not its text and expiry (176 bytes an entry).
func TestNonceCountsTakeLittleRoom(t *testing.T) {
	const count = 1 << 16
	n := newNonces([]byte("test-secret-0123456789abcdef"), 30*time.Second, count)
	t0 := time.Now()
	ids := make([]nonceID, 0, count)
	for range count {
		st, id := n.check(t0, n.issue(t0, "example.com"), "example.com")
		if st != nonceOK {
			t.Fatal("a fresh nonce is not OK")
		}
		ids = append(ids, id)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, id := range ids {
		if n.use(t0, id, 1, true) != ncOK {
			t.Fatal("a fresh nonce's first use refused")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ids)
	if per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / count; per > 64 {
		t.Fatalf("%d bytes a nonce count, want at most 64", per)
	}
}

// TestNoncePurgeForgetsABurst: the counts of a burst of nonces go once
// the nonces are stale, and so does the room their map grew to; a nonce
// still valid keeps its count through the purge.
func TestNoncePurgeForgetsABurst(t *testing.T) {
	n := newNonces([]byte("test-secret-0123456789abcdef"), 30*time.Second, 100000)
	t0 := time.Now()
	for range 5000 {
		nonce := n.issue(t0, "example.com")
		st, id := n.check(t0, nonce, "example.com")
		if st != nonceOK {
			t.Fatal("a fresh nonce is not OK")
		}
		if n.use(t0, id, 1, true) != ncOK {
			t.Fatal("a fresh nonce's first use refused")
		}
	}
	later := t0.Add(20 * time.Second)
	kept := n.issue(later, "example.com")
	_, id := n.check(later, kept, "example.com")
	if n.use(later, id, 1, true) != ncOK {
		t.Fatal("first use refused")
	}

	if left := n.purge(t0.Add(31 * time.Second)); left != 1 {
		t.Fatalf("%d nonces tracked after the burst went stale, want 1", left)
	}
	if n.peak != 1 {
		t.Fatalf("the map was not remade: peak %d", n.peak)
	}
	if n.use(later, id, 1, true) != ncReplay {
		t.Fatal("a nonce count replayed after the purge was taken")
	}
	if n.use(later, id, 2, true) != ncOK {
		t.Fatal("the next nonce count refused after the purge")
	}
}

// TestRunPurgesNonces: Run forgets stale nonce counts soon after they go
// stale, with nothing else happening (no request, no binding expiring).
func TestRunPurgesNonces(t *testing.T) {
	r := New(func() Directory { return testAccounts }, Options{NonceTTL: 400 * time.Millisecond, Log: testLogger()})
	now := time.Now()
	for range 2000 {
		nonce := r.nonces.issue(now, "example.com")
		_, id := r.nonces.check(now, nonce, "example.com")
		r.nonces.use(now, id, 1, true)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.Run(ctx)
	deadline := time.Now().Add(2 * time.Second)
	for r.nonces.purge(time.Time{}) > 0 || r.nonces.peakSize() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d nonce counts (peak %d) kept 2 s after they went stale", r.nonces.purge(time.Time{}), r.nonces.peakSize())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunPurgesANewBurst: Run, asleep on an empty table, purges the
// counts of a burst that comes later.
func TestRunPurgesANewBurst(t *testing.T) {
	r := New(func() Directory { return testAccounts }, Options{NonceTTL: 400 * time.Millisecond, Log: testLogger()})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.Run(ctx)
	time.Sleep(100 * time.Millisecond) // Run asleep: no binding, no nonce
	now := time.Now()
	for range 2000 {
		nonce := r.nonces.issue(now, "example.com")
		_, id := r.nonces.check(now, nonce, "example.com")
		r.nonces.use(now, id, 1, true)
	}
	deadline := time.Now().Add(2 * time.Second)
	for r.nonces.purge(time.Time{}) > 0 || r.nonces.peakSize() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d nonce counts (peak %d) kept 2 s after they went stale", r.nonces.purge(time.Time{}), r.nonces.peakSize())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
