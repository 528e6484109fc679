//go:build !linux

package tick

import (
	"errors"
	"time"
)

func newKernelTicks(start time.Time, period time.Duration) (ticks, error) {
	return nil, errors.New("no kernel interval timer on this system")
}
