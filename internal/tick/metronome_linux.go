package tick

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// kernelTicks is a timerfd in the network poller.
type kernelTicks struct {
	f   *os.File
	buf [8]byte // the expiration count a read returns
}

func newKernelTicks(first, period time.Duration) (ticks, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	spec := unix.ItimerSpec{Interval: unix.NsecToTimespec(period.Nanoseconds()), Value: unix.NsecToTimespec(first.Nanoseconds())}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor joins the poller; one that could not
	// refuses deadlines, and a Wait on it could not be interrupted.
	f := os.NewFile(uintptr(fd), "timerfd")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	return &kernelTicks{f: f}, nil
}

func (k *kernelTicks) wait() bool {
	_, err := k.f.Read(k.buf[:])
	return err == nil
}

func (k *kernelTicks) interrupt() { k.f.SetReadDeadline(time.Unix(1, 0)) }

func (k *kernelTicks) close() { k.f.Close() }
