package tick

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestMetronomeTicksOnItsGrid(t *testing.T) {
	const period = 20 * time.Millisecond
	start := time.Now()
	m := NewMetronome(t.Context(), 5*time.Millisecond, period)
	defer m.Stop()
	for i := range 10 {
		now, ok := m.Wait()
		if !ok {
			t.Fatal("Wait ended before Stop")
		}
		due := start.Add(5*time.Millisecond + time.Duration(i)*period)
		if now.Before(due) {
			t.Fatalf("tick %d at %v, before its instant %v", i, now.Sub(start), due.Sub(start))
		}
	}
}

func TestMetronomeLateWakeIsOneTick(t *testing.T) {
	m := NewMetronome(t.Context(), time.Millisecond, 5*time.Millisecond)
	defer m.Stop()
	time.Sleep(30 * time.Millisecond) // six periods pass unread
	if _, ok := m.Wait(); !ok {
		t.Fatal("no tick")
	}
	// Had the missed ticks been queued, the next ones would come back to
	// back; three more take at least the two periods between them.
	t0 := time.Now()
	for range 3 {
		if _, ok := m.Wait(); !ok {
			t.Fatal("no tick")
		}
	}
	if d := time.Since(t0); d < 10*time.Millisecond {
		t.Fatalf("three Waits returned in %v: missed ticks were queued", d)
	}
}

// A blocked Wait returns at once when the metronome's context ends or it
// stops, from another goroutine: through the poller (NewMetronome) or
// blocked in the kernel on its own thread (NewThreadMetronome).
func TestMetronomeStopsWithItsContextOrStop(t *testing.T) {
	for name, newMetronome := range map[string]func(context.Context, time.Duration, time.Duration) *Metronome{
		"NewMetronome": NewMetronome, "NewThreadMetronome": NewThreadMetronome,
	} {
		for _, how := range []string{"context", "Stop"} {
			ctx, cancel := context.WithCancel(t.Context())
			made := make(chan *Metronome)
			done := make(chan bool)
			go func() {
				runtime.LockOSThread() // as NewThreadMetronome's caller must be
				defer runtime.UnlockOSThread()
				m := newMetronome(ctx, time.Hour, time.Hour)
				made <- m
				_, ok := m.Wait()
				done <- ok
			}()
			m := <-made
			time.Sleep(10 * time.Millisecond) // let Wait block
			if how == "context" {
				cancel()
			} else {
				m.Stop()
			}
			waitEnded(t, name+", "+how, m, done)
			cancel()
		}
	}
}

// waitEnded checks that a Wait blocked when the metronome was stopped (by
// how) returned without a tick (done), and that Wait after Stop ticks no
// more.
func waitEnded(t *testing.T, how string, m *Metronome, done <-chan bool) {
	t.Helper()
	select {
	case ok := <-done:
		if ok {
			t.Fatalf("%s: Wait reported a tick", how)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Wait still blocked", how)
	}
	m.Stop() // twice is fine
	if _, ok := m.Wait(); ok {
		t.Fatalf("%s: Wait after Stop reported a tick", how)
	}
}

func TestGoTicksKeepTheGrid(t *testing.T) {
	start := time.Now()
	g := newGoTicks(start.Add(time.Millisecond), 10*time.Millisecond)
	defer g.close()
	for range 5 {
		if err := g.wait(); err != nil {
			t.Fatal(err)
		}
	}
	if got := time.Since(start); got < 40*time.Millisecond {
		t.Fatalf("5 ticks in %v, want about 41 ms", got)
	}
	g.interrupt()
	g.interrupt()
	if g.wait() == nil {
		t.Fatal("a tick after interrupt")
	}
}

// failingTicks is a source whose reads fail, as a kernel timer's might.
type failingTicks struct{ closed bool }

func (f *failingTicks) wait() error { return errors.New("read timerfd: bad file descriptor") }
func (f *failingTicks) interrupt()  {}
func (f *failingTicks) close()      { f.closed = true }

func TestMetronomeOutlivesAFailedKernelTimer(t *testing.T) {
	const period = 10 * time.Millisecond
	start := time.Now().Add(period)
	src := &failingTicks{}
	m := newMetronome(t.Context(), start, period, src)
	defer m.Stop()
	for i := range 5 {
		now, ok := m.Wait()
		if !ok {
			t.Fatalf("tick %d: Wait ended after the source failed", i)
		}
		if due := start.Add(time.Duration(i) * period); now.Before(due) {
			t.Fatalf("tick %d at %v, before its instant", i, now.Sub(due))
		}
	}
	if m.FellBack() == nil || !src.closed {
		t.Fatalf("FellBack %v, failed source closed %v", m.FellBack(), src.closed)
	}
	m.Stop()
	if _, ok := m.Wait(); ok {
		t.Fatal("a tick after Stop")
	}
}

// BenchmarkLatenessWhileCollecting reports how late a 20 ms tick wakes
// while the garbage collector marks a large heap over and over, for a
// Metronome and for a time.Ticker (p99 and worst, in ms).
//
//	go test -run - -bench Lateness ./internal/tick
func BenchmarkLatenessWhileCollecting(b *testing.B) {
	type node struct{ p [4]*node }
	heap := make([]*node, 3_000_000)
	for i := range heap {
		heap[i] = &node{}
		if i > 0 {
			heap[i].p[0] = heap[i-1] // pointers for the collector to follow
		}
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GC()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer close(stop)
	const period, ticks = 20 * time.Millisecond, 100
	lateness := func(wait func()) (p99, worst float64) {
		start := time.Now()
		var late []time.Duration
		for i := 1; i <= ticks; i++ {
			wait()
			late = append(late, time.Since(start.Add(time.Duration(i)*period)))
		}
		slices.Sort(late)
		return float64(late[ticks*99/100-1]) / 1e6, float64(late[ticks-1]) / 1e6
	}
	for b.Loop() {
		m := NewMetronome(b.Context(), period, period)
		mp, mw := lateness(func() { m.Wait() })
		m.Stop()
		tk := time.NewTicker(period)
		tp, tw := lateness(func() { <-tk.C })
		tk.Stop()
		b.ReportMetric(mp, "metronome-p99-ms")
		b.ReportMetric(mw, "metronome-max-ms")
		b.ReportMetric(tp, "ticker-p99-ms")
		b.ReportMetric(tw, "ticker-max-ms")
	}
	runtime.KeepAlive(heap)
}
