//go:build !linux

package tick

import (
	"errors"
	"time"
)

func newKernelTicks(first, period time.Duration) (ticks, error) {
	return nil, errors.New("no kernel interval timer on this system")
}
