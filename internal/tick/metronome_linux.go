package tick

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fallbackSlack is how long after a grid instant a wait stops waiting
// for the kernel timer's poller event and takes the tick from a Go timer
// instead (the read deadline): on a machine whose Ps are all busy, the
// poller is looked at less often than timers are.
const fallbackSlack = 2 * time.Millisecond

// kernelTicks is a timerfd in the network poller, with a Go timer (the
// read deadline) as a fallback: whichever comes first is the tick.
type kernelTicks struct {
	grid
	f       *os.File
	stopped atomic.Bool
	buf     [8]byte // the expiration count a read returns
}

// timerfdOn returns a non-blocking kernel interval timer on the grid of
// start and period.
func timerfdOn(start time.Time, period time.Duration) (int, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return -1, err
	}
	// The kernel's grid starts a little after start (the time to get
	// here): a kernel tick is never early on the Go clock.
	first := max(time.Until(start), time.Nanosecond)
	spec := unix.ItimerSpec{Interval: unix.NsecToTimespec(period.Nanoseconds()), Value: unix.NsecToTimespec(first.Nanoseconds())}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func newKernelTicks(start time.Time, period time.Duration) (ticks, error) {
	fd, err := timerfdOn(start, period)
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor joins the poller; one that could not
	// refuses deadlines, and a Wait on it could not be interrupted.
	f := os.NewFile(uintptr(fd), "timerfd")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	return &kernelTicks{grid: grid{start: start, period: period}, f: f}, nil
}

func (k *kernelTicks) wait() error {
	for {
		// Set the fallback before looking at stopped: an interrupt after
		// the look moves the deadline to the past after this.
		k.f.SetReadDeadline(k.start.Add(time.Duration(k.last)*k.period + fallbackSlack))
		if k.stopped.Load() {
			return errInterrupted
		}
		_, err := k.f.Read(k.buf[:])
		if k.stopped.Load() {
			return errInterrupted
		}
		if err != nil && !os.IsTimeout(err) {
			return fmt.Errorf("tick: reading the kernel timer: %w", err)
		}
		// Whichever woke us, the timer or the fallback: the other one's
		// wake for the same instant is skipped.
		if k.advance() {
			return nil
		}
	}
}

func (k *kernelTicks) interrupt() {
	k.stopped.Store(true)
	k.f.SetReadDeadline(time.Unix(1, 0))
}

func (k *kernelTicks) close() { k.f.Close() }
