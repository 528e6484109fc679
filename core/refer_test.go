package core

import "testing"

// TestPendingKeepsOnlyNotifiesOnTheirWay: a leg that transfers again and
// again keeps only the final NOTIFYs not yet sent, in order.
func TestPendingKeepsOnlyNotifiesOnTheirWay(t *testing.T) {
	a, sent, c := make(chan struct{}), make(chan struct{}), make(chan struct{})
	close(sent)
	got := pending([]chan struct{}{a, sent, c})
	if len(got) != 2 || got[0] != a || got[1] != c {
		t.Fatalf("pending kept %d, want a and c", len(got))
	}
	if len(pending(nil)) != 0 {
		t.Fatal("pending of nothing is not empty")
	}
}
