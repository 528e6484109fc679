package registrar

import (
	"testing"
	"time"
)

// TestNoncePurgeForgetsABurst: the counts of a burst of nonces go once
// the nonces are stale, and so does the room their map grew to; a nonce
// still valid keeps its count through the purge.
func TestNoncePurgeForgetsABurst(t *testing.T) {
	n := newNonces([]byte("test-secret-0123456789abcdef"), 30*time.Second, 100000)
	t0 := time.Now()
	for range 5000 {
		nonce := n.issue(t0, "example.com")
		st, exp := n.check(t0, nonce, "example.com")
		if st != nonceOK {
			t.Fatal("a fresh nonce is not OK")
		}
		if n.use(t0, nonce, exp, 1, true) != ncOK {
			t.Fatal("a fresh nonce's first use refused")
		}
	}
	later := t0.Add(20 * time.Second)
	kept := n.issue(later, "example.com")
	_, exp := n.check(later, kept, "example.com")
	if n.use(later, kept, exp, 1, true) != ncOK {
		t.Fatal("first use refused")
	}

	if left := n.purge(t0.Add(31 * time.Second)); left != 1 {
		t.Fatalf("%d nonces tracked after the burst went stale, want 1", left)
	}
	if n.peak != 1 {
		t.Fatalf("the map was not remade: peak %d", n.peak)
	}
	if n.use(later, kept, exp, 1, true) != ncReplay {
		t.Fatal("a nonce count replayed after the purge was taken")
	}
	if n.use(later, kept, exp, 2, true) != ncOK {
		t.Fatal("the next nonce count refused after the purge")
	}
}
