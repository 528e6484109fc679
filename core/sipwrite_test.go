package core

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestWritesGoStraightToTheSocket: datagrams written through the SIP
// socket from many goroutines at once all arrive, from the socket's own
// address; once the socket is closed a write fails instead of reaching a
// descriptor number reused since.
func TestWritesGoStraightToTheSocket(t *testing.T) {
	uc := loopbackUDP(t)
	tc := newTimedConn(uc, nil)
	if tc.direct.fd < 0 {
		t.Fatal("no direct writer on an IPv4 socket")
	}
	phone := loopbackUDP(t)
	const writers, each = 4, 40 // within the phone's receive queue
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if n, err := tc.WriteTo([]byte("SIP/2.0 200 OK\r\n\r\n"), phone.LocalAddr()); err != nil || n != 18 {
					t.Errorf("write: %d, %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	buf := make([]byte, 100)
	for i := range writers * each {
		_ = phone.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := phone.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if string(buf[:n]) != "SIP/2.0 200 OK\r\n\r\n" || from.String() != uc.LocalAddr().String() {
			t.Fatalf("datagram %d: %q from %v, want the 200 from %v", i, buf[:n], from, uc.LocalAddr())
		}
	}
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.WriteTo([]byte("x"), phone.LocalAddr()); err == nil {
		t.Fatal("a write on the closed socket succeeded")
	}
	// Not to a v6 address: Go's way, and its error.
	if _, ok, _ := tc.direct.send([]byte("x"), &net.UDPAddr{IP: net.IPv6loopback, Port: 5060}); ok {
		t.Fatal("an IPv6 destination took the direct path")
	}
}
