package metric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSetRegistersWhatItCreates(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewSet(reg)
	s.Counter("a_total", "A.").Add(2)
	s.Counters("b_total", "B.", "kind").WithLabelValues("x").Inc()
	s.GaugeFunc("c", "C.", nil, func() float64 { return 7 })
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 3 {
		t.Fatalf("gathered %d series (%v), want 3", n, err)
	}
	s.Counter("a_total", "A again.")
	if s.Err() == nil {
		t.Fatal("a second series of one name was registered without an error")
	}
}

func TestSetWithoutRegistererStillCounts(t *testing.T) {
	c := NewSet(nil).Counter("a_total", "A.")
	c.Inc()
	if v := testutil.ToFloat64(c); v != 1 {
		t.Fatalf("counter is %v, want 1", v)
	}
}

func TestRuntimeSeriesOnceWhereverRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewSet(reg).Runtime()
	s := NewSet(reg)
	s.Runtime() // a second PBX on the same registry: not an error
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "go_gc_duration_seconds", "process_resident_memory_bytes")
	if err != nil || n != 2 {
		t.Fatalf("gathered %d of the runtime's series (%v), want 2", n, err)
	}
	NewSet(nil).Runtime() // no registry: nothing, no panic
}
