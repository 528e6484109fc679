package core

import (
	"net"
	"testing"
	"time"
)

// TestQueueWaitIsTheDatagramsOwn: a datagram read at once reports a wait
// of about nothing; one left 50 ms in the receive queue reports those 50 ms.
func TestQueueWaitIsTheDatagramsOwn(t *testing.T) {
	uc := loopbackUDP(t)
	var seen []time.Duration
	tc := newTimedConn(uc, func(d time.Duration) { seen = append(seen, d) })
	defer tc.Close()
	if tc.oob == nil {
		t.Skip("no SO_TIMESTAMPNS here")
	}
	tx, err := net.DialUDP("udp", nil, uc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	buf := make([]byte, 2048)
	read := func() time.Duration {
		t.Helper()
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := tc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "OPTIONS" || from == nil {
			t.Fatalf("read %q from %v: %v", buf[:n], from, err)
		}
		if len(seen) == 0 {
			t.Fatal("no wait observed")
		}
		return seen[len(seen)-1]
	}

	// The kernel turns its receive timestamps on a moment after the first
	// socket asks (a deferred static key); until then a datagram is
	// stamped when read.
	for live := time.Now().Add(5 * time.Second); ; {
		if _, err := tx.Write([]byte("OPTIONS")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		if read() >= 10*time.Millisecond {
			break
		}
		if time.Now().After(live) {
			t.Fatal("the kernel never stamped a datagram on arrival")
		}
	}
	seen = nil

	if _, err := tx.Write([]byte("OPTIONS")); err != nil {
		t.Fatal(err)
	}
	if w := read(); w > 40*time.Millisecond {
		t.Errorf("read at once: waited %v", w)
	}
	if _, err := tx.Write([]byte("OPTIONS")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the datagram waits in the queue
	if w := read(); w < 50*time.Millisecond || w > time.Second {
		t.Errorf("left 50 ms in the queue: waited %v", w)
	}
	if len(seen) != 2 {
		t.Errorf("%d waits observed, want 2", len(seen))
	}
}

// TestQueueStandsOnlyWhenItNeverDrains: the standing queue's wait is the
// least wait over the last window and more; a burst does not make one,
// a queue that never drains below the wait does, and it is gone as soon
// as one datagram is read without waiting.
func TestQueueStandsOnlyWhenItNeverDrains(t *testing.T) {
	tc := &timedConn{}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tc.note(0, at(0))
	tc.note(300*time.Millisecond, at(10)) // a burst
	tc.note(250*time.Millisecond, at(50))
	if w := tc.queueWait(); w != 0 {
		t.Fatalf("a burst in a window with a datagram read at once: standing %v", w)
	}
	for ms := 100; ms <= 300; ms += 10 { // every datagram waits 200–300 ms
		tc.note(time.Duration(200+ms%100)*time.Millisecond, at(ms))
	}
	if w := tc.queueWait(); w != 200*time.Millisecond {
		t.Fatalf("a queue that never drained: standing %v, want 200ms", w)
	}
	tc.note(0, at(310))
	if w := tc.queueWait(); w != 0 {
		t.Fatalf("a datagram read at once: standing %v, want 0", w)
	}
	tc.note(300*time.Millisecond, at(2000)) // after a quiet second: no window before
	if w := tc.queueWait(); w != 300*time.Millisecond {
		t.Fatalf("after a quiet second: standing %v, want the datagram's own 300ms", w)
	}
}

// loopbackUDP is a UDP socket on 127.0.0.1, closed when the test ends.
func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	return uc
}

// FuzzReceivedAt: whatever control data a read returns, receivedAt finds
// a timestamp or none, never a panic or a read past its end.
func FuzzReceivedAt(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x23, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Fuzz(func(t *testing.T, oob []byte) {
		// The kernel hands aligned buffers; so does the fuzzer's copy.
		buf := make([]byte, len(oob), len(oob)+8)
		copy(buf, oob)
		receivedAt(buf)
	})
}

// TestReceivedAtIgnoresGarbage: control data that is not a well-formed
// timestamp gives none, and never a panic.
func TestReceivedAtIgnoresGarbage(t *testing.T) {
	for _, oob := range [][]byte{nil, {1}, make([]byte, 16), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 0x1d, 0, 0, 0}} {
		if _, ok := receivedAt(oob); ok {
			t.Errorf("receivedAt(%x) found a timestamp", oob)
		}
	}
}
