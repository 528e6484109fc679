package deadline

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// run starts s and returns a channel of fired keys.
func run(t *testing.T, s *Scheduler) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	fired := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, func(k string) { fired <- k })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return fired
}

func next(t *testing.T, fired <-chan string, within time.Duration) string {
	t.Helper()
	select {
	case k := <-fired:
		return k
	case <-time.After(within):
		t.Fatalf("nothing fired within %s", within)
		return ""
	}
}

// The timing tests run in a synctest bubble: the clock is fake and moves
// only when every goroutine is blocked, so due times are checked exactly
// and the tests take no real time.

func TestFiresInDueOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewScheduler()
		start := time.Now()
		s.Schedule("c", start.Add(150*time.Millisecond))
		s.Schedule("a", start.Add(50*time.Millisecond))
		s.Schedule("b", start.Add(100*time.Millisecond))
		fired := run(t, s)
		for i, want := range []string{"a", "b", "c"} {
			if got := next(t, fired, time.Second); got != want {
				t.Fatalf("fired %q, want %q", got, want)
			}
			if d := time.Since(start); d != time.Duration(i+1)*50*time.Millisecond {
				t.Fatalf("%s fired at %s", want, d)
			}
		}
		if s.Len() != 0 {
			t.Fatalf("%d still pending", s.Len())
		}
	})
}

func TestScheduleEarlierWakesTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewScheduler()
		fired := run(t, s)
		s.Schedule("late", time.Now().Add(time.Hour))
		synctest.Wait() // the loop now sleeps for an hour
		start := time.Now()
		s.Schedule("soon", start.Add(30*time.Millisecond))
		if got := next(t, fired, time.Second); got != "soon" {
			t.Fatalf("fired %q", got)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Fatalf("fired after %s, want 30ms", d)
		}
	})
}

func TestRescheduleAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewScheduler()
		fired := run(t, s)
		now := time.Now()
		s.Schedule("x", now.Add(40*time.Millisecond))
		s.Schedule("y", now.Add(60*time.Millisecond))
		s.Schedule("x", now.Add(120*time.Millisecond)) // moved later
		if !s.Cancel("y") || s.Cancel("y") {
			t.Fatal("Cancel did not report pending keys right")
		}
		if due, ok := s.Due("x"); !ok || !due.Equal(now.Add(120*time.Millisecond)) {
			t.Fatalf("Due(x) = %v %v", due, ok)
		}
		if got := next(t, fired, time.Second); got != "x" {
			t.Fatalf("fired %q", got)
		}
		if d := time.Since(now); d != 120*time.Millisecond {
			t.Fatalf("x fired after %s, not at its new due time", d)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case k := <-fired:
			t.Fatalf("cancelled key %q fired", k)
		default:
		}
	})
}

func TestPastDueFiresAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewScheduler()
		start := time.Now()
		s.Schedule("old", start.Add(-time.Minute)) // e.g. rebuilt after a restart
		fired := run(t, s)
		if got := next(t, fired, 200*time.Millisecond); got != "old" || time.Since(start) != 0 {
			t.Fatalf("fired %q after %s", got, time.Since(start))
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	s := NewScheduler()
	fired := run(t, s)
	var wg sync.WaitGroup
	now := time.Now()
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				k := strconv.Itoa(g*1000 + i)
				s.Schedule(k, now.Add(time.Duration(i%10)*time.Millisecond))
				if i%2 == 1 {
					s.Cancel(k)
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for len(seen) < 400 {
		seen[next(t, fired, 2*time.Second)] = true
	}
}

// TestPendingReturnsAreCheap is point 8 of the automatic-retrieval issue:
// 10,000 pending returns cost no more than a few MiB and no goroutines.
func TestPendingReturnsAreCheap(t *testing.T) {
	perEntry, goroutines := measure(t, 10_000)
	t.Logf("10,000 pending: %.0f heap bytes each (%.2f MiB), %d extra goroutines",
		perEntry, perEntry*10_000/(1<<20), goroutines)
	if perEntry*10_000 > 4<<20 {
		t.Errorf("10,000 pending returns take %.1f MiB", perEntry*10_000/(1<<20))
	}
	if goroutines > 1 {
		t.Errorf("%d goroutines for pending returns, want only the scheduler's", goroutines)
	}
}

// measure schedules n keys an hour ahead on a running Scheduler and returns
// the heap bytes per key and the goroutines added (the Run loop included).
func measure(t testing.TB, n int) (float64, int) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "customer/" + strconv.Itoa(1_000_000+i)
	}
	g0 := runtime.NumGoroutine()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewScheduler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, func(string) {}) }()
	due := time.Now().Add(time.Hour)
	for i, k := range keys {
		s.Schedule(k, due.Add(time.Duration(i)*time.Millisecond))
	}
	time.Sleep(10 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	goroutines := runtime.NumGoroutine() - g0
	if s.Len() != n {
		t.Fatalf("%d pending, want %d", s.Len(), n)
	}
	cancel()
	<-done
	runtime.KeepAlive(s)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n), goroutines
}

// BenchmarkSchedule10k reports the memory and goroutines of 10,000 pending
// returns, and the cost of scheduling and cancelling one.
func BenchmarkSchedule10k(b *testing.B) {
	perEntry, goroutines := measure(b, 10_000)
	s := NewScheduler()
	due := time.Now().Add(time.Hour)
	for i := range 10_000 {
		s.Schedule(strconv.Itoa(i), due.Add(time.Duration(i)*time.Millisecond))
	}
	for i := 0; b.Loop(); i++ {
		k := "k" + strconv.Itoa(i%1000)
		s.Schedule(k, due.Add(time.Duration(i%20_000)*time.Millisecond))
		s.Cancel(k)
	}
	b.ReportMetric(perEntry, "heap-B/pending")
	b.ReportMetric(perEntry*10_000/(1<<20), "MiB/10k")
	b.ReportMetric(float64(goroutines), "goroutines/10k")
}
