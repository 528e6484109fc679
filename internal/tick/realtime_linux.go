package tick

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Realtime locks the calling goroutine to its OS thread for the rest of
// the goroutine's life and gives that thread the real-time round-robin
// policy (SCHED_RR) at priority prio (1-99), the way Asterisk's -p and
// FreeSWITCH's -rp raise their media threads: a thread waiting for the
// next 20 ms of music then runs the moment its timer expires, instead of
// waiting for the kernel's fair scheduler to find it a turn among busy
// processes (on a loaded 2-core machine, 10-20 ms: every stream's packet
// late at once). The thread is never unlocked, so it ends with the
// goroutine (the main thread, which Go does not end, is parked for good)
// and no other goroutine ever runs on it; threads it would
// start go back to the normal policy (SCHED_RESET_ON_FORK), and the Go
// runtime starts none from a locked thread anyway.
//
// The process needs CAP_SYS_NICE (or an RLIMIT_RTPRIO of at least prio);
// without it Realtime unlocks the goroutine and returns the kernel's
// refusal, and nothing has changed.
func Realtime(prio int) error {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio), Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("tick: real-time priority %d: %w", prio, err)
	}
	return nil
}

// RealtimePermitted reports whether a thread of this process may run at
// real-time priority prio (nil) or why not, without keeping it: the
// thread it tries on goes back to its own policy at once.
func RealtimePermitted(prio int) error {
	runtime.LockOSThread()
	old, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("tick: reading the thread's scheduling: %w", err)
	}
	attr := unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio), Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("tick: real-time priority %d: %w", prio, err)
	}
	if unix.SchedSetAttr(0, old, 0) == nil {
		runtime.UnlockOSThread()
	} // else the goroutine ends locked, and its thread with it
	return nil
}

// NewThreadMetronome is a Metronome whose Wait blocks the calling thread
// in the kernel (poll on a timerfd) rather than parking the goroutine on
// Go's network poller: the kernel's scheduler wakes the thread itself,
// at the thread's own priority (Realtime). Wait must be called from the
// goroutine that made it, locked to its thread. If the kernel refuses the
// timer, it is NewMetronome's.
func NewThreadMetronome(ctx context.Context, first, period time.Duration) *Metronome {
	first = max(first, time.Nanosecond)
	start := time.Now().Add(first)
	src, err := newThreadTicks(start, period)
	if err != nil {
		return NewMetronome(ctx, first, period)
	}
	return newMetronome(ctx, start, period, src)
}

// threadTicks is a timerfd and an eventfd (the interrupt) polled with a
// blocking system call.
type threadTicks struct {
	grid
	stopped atomic.Bool

	// waiting is held by wait; close takes it, after interrupting, so as
	// not to free the descriptors under a poll. closing guards them
	// against interrupt, which may come from any goroutine at any time.
	waiting, closing sync.Mutex
	tfd, efd         int // -1 once closed
}

func newThreadTicks(start time.Time, period time.Duration) (*threadTicks, error) {
	tfd, err := timerfdOn(start, period)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(tfd)
		return nil, err
	}
	return &threadTicks{grid: grid{start: start, period: period}, tfd: tfd, efd: efd}, nil
}

func (k *threadTicks) wait() error {
	k.waiting.Lock()
	defer k.waiting.Unlock()
	var count [8]byte
	for {
		if k.stopped.Load() || k.tfd < 0 {
			return errInterrupted
		}
		fds := []unix.PollFd{{Fd: int32(k.tfd), Events: unix.POLLIN}, {Fd: int32(k.efd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return fmt.Errorf("tick: polling the kernel timer: %w", err)
		}
		if k.stopped.Load() {
			return errInterrupted
		}
		if _, err := unix.Read(k.tfd, count[:]); err != nil && err != unix.EAGAIN {
			return fmt.Errorf("tick: reading the kernel timer: %w", err)
		}
		if k.advance() {
			return nil
		}
	}
}

func (k *threadTicks) interrupt() {
	k.stopped.Store(true)
	k.closing.Lock()
	defer k.closing.Unlock()
	if k.efd >= 0 {
		one := [8]byte{1}
		unix.Write(k.efd, one[:]) // counts up; one poll wake is all it takes
	}
}

func (k *threadTicks) close() {
	k.interrupt()
	k.waiting.Lock() // a wait in progress has returned
	defer k.waiting.Unlock()
	k.closing.Lock()
	defer k.closing.Unlock()
	if k.tfd >= 0 {
		unix.Close(k.tfd)
		unix.Close(k.efd)
		k.tfd, k.efd = -1, -1
	}
}
