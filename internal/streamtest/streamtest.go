// Package streamtest holds what the tests of SIP over TCP share, in the
// core's and the service's: a listener that reports who reaches it, a
// sender that hangs up the moment it has written, and the probe that
// tells a connection its far end closed.
package streamtest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// Victim listens on loopback TCP and reports the first connection it gets,
// then closes it: the address a forged Via names.
func Victim(t testing.TB) (addr string, reached <-chan net.Addr) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan net.Addr, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			ch <- c.RemoteAddr()
			c.Close()
		}
	}()
	return l.Addr().String(), ch
}

// HangUpOnRequests connects to server rounds times, each time writes each
// requests (method, Via naming via) and closes at once: the answers find
// the connection gone.
func HangUpOnRequests(t testing.TB, server, via, method string, rounds, each int) {
	t.Helper()
	for round := range rounds {
		peer, err := net.Dial("tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for n := range each {
			fmt.Fprintf(&b, "%s sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-via-%d-%d\r\n"+
				"From: <sip:a@%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: via-%d-%d\r\nCSeq: 1 %s\r\n"+
				"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", method, server, via, round, n, server, server, round, n, method)
		}
		_, _ = peer.Write([]byte(b.String()))
		peer.Close()
	}
}

// Idle opens n TCP connections to server that send nothing; they are
// closed when the test ends.
func Idle(t testing.TB, server string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// HungUp tells whether the far end has closed c: a closed socket answers
// data with a reset, so after a keep-alive (a lone CRLF, which asks for no
// answer) a short read sees EOF or the reset; an open one sees a timeout.
func HungUp(c net.Conn) bool {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write([]byte("\r\n")); err != nil {
		return true
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
