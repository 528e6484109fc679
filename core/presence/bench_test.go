package presence

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// BenchmarkNotify1000 measures one state change of an entity watched by
// 1,000 subscriptions: from Set to the last of the 1,000 NOTIFYs built and
// handed to the transport (Send). The transport answers at once; the SIP
// round trip over UDP is measured end to end in pbx (BenchmarkBLF1000).
func BenchmarkNotify1000(b *testing.B) {
	const subs = 1000
	var sent atomic.Int64
	done := make(chan struct{}, 1)
	var want atomic.Int64
	send := func(_ context.Context, req *sip.Request) (*sip.Response, error) {
		if sent.Add(1) == want.Load() {
			done <- struct{}{}
		}
		return sip.NewResponseFromRequest(req, 200, "OK", nil), nil
	}
	s, err := New(Config{Send: send, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Contact: sip.Uri{Host: "127.0.0.1"}})
	if err != nil {
		b.Fatal(err)
	}
	want.Store(subs)
	for i := range subs {
		req := subscribeReq(b, fmt.Sprint("bench-", i), "ft", "", 1, "Event: dialog")
		s.Subscribe(req, func(*sip.Response) error { return nil }, demo711)
	}
	<-done
	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		want.Store(sent.Load() + subs)
		start := time.Now()
		s.Set("demo", "711", State{Busy: i%2 == 0, User: "200", Display: "Alice"})
		<-done
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}
