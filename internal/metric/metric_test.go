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
