package deadline

import (
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	var q Queue[int]
	t0 := time.Unix(1000, 0)
	if _, ok := q.Next(); ok || q.Len() != 0 {
		t.Fatal("a new queue is not empty")
	}
	if !q.Set(3, t0.Add(3*time.Second)) || q.Set(5, t0.Add(5*time.Second)) {
		t.Fatal("Set misreports the earliest key")
	}
	if !q.Set(1, t0.Add(time.Second)) {
		t.Fatal("an earlier key is not the earliest")
	}
	if !q.Set(5, t0) { // moved to the front
		t.Fatal("a key moved first is not the earliest")
	}
	if due, ok := q.Due(5); !ok || !due.Equal(t0) {
		t.Fatalf("Due(5) = %v %v", due, ok)
	}
	if !q.Remove(3) || q.Remove(3) || q.Len() != 2 {
		t.Fatal("Remove misreports")
	}
	got := q.PopDue(t0.Add(time.Second))
	if len(got) != 2 || got[0] != 5 || got[1] != 1 || q.Len() != 0 {
		t.Fatalf("PopDue = %v, %d left", got, q.Len())
	}
	if q.PopDue(t0.Add(time.Hour)) != nil {
		t.Fatal("PopDue of an empty queue returned keys")
	}
}
