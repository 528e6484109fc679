package tick

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A thread metronome ticks on its grid, each tick a wake of the calling
// thread; when the process may, that thread runs real-time.
func TestThreadMetronomeTicksOnARealtimeThread(t *testing.T) {
	const period = 20 * time.Millisecond
	result := make(chan error, 1)
	go func() {
		rtErr := Realtime(10)
		if rtErr == nil {
			attr, err := unix.SchedGetAttr(0, 0)
			if err != nil || attr.Policy != unix.SCHED_RR || attr.Priority != 10 {
				t.Errorf("after Realtime the thread has policy %+v (%v), want SCHED_RR 10", attr, err)
			}
		} else {
			t.Logf("not permitted here, ticking at normal priority: %v", rtErr)
		}
		start := time.Now()
		m := NewThreadMetronome(t.Context(), 5*time.Millisecond, period)
		defer m.Stop()
		if _, ok := m.src.(*threadTicks); !ok {
			t.Errorf("source %T, want the thread's own timer", m.src)
		}
		for i := range 10 {
			now, ok := m.Wait()
			if !ok {
				t.Error("Wait ended before Stop")
				break
			}
			if due := start.Add(5*time.Millisecond + time.Duration(i)*period); now.Before(due) {
				t.Errorf("tick %d at %v, before its instant %v", i, now.Sub(start), due.Sub(start))
			}
		}
		result <- rtErr
	}()
	<-result

	// The real-time thread ended with its goroutine: a new goroutine's
	// thread runs at the normal policy.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if attr, err := unix.SchedGetAttr(0, 0); err == nil && attr.Policy != 0 { // 0: SCHED_OTHER
			t.Errorf("another goroutine's thread has policy %d", attr.Policy)
		}
	}()
	<-done
}

// RealtimePermitted answers without keeping the priority: the thread it
// tried on is back to its policy.
func TestRealtimePermittedLeavesTheThreadAsItWas(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := RealtimePermitted(10)
	t.Logf("permitted: %v", err)
	if attr, err := unix.SchedGetAttr(0, 0); err != nil || attr.Policy != 0 {
		t.Fatalf("the thread has policy %+v (%v) after the question, want SCHED_OTHER", attr, err)
	}
}
