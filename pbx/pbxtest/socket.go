package pbxtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// MediaPort is the local port of the far end of c's audio: the core leg's
// RTP port.
func (c *Call) MediaPort() int {
	if sess := c.med.MediaSession(); sess != nil {
		return sess.Raddr.Port
	}
	return 0
}

// udpSocket looks up the UDP sockets of this machine bound to port in
// /proc/net/udp and udp6: whether there is one, and how many datagrams the
// kernel dropped at them (socket filters, full buffers).
func udpSocket(port int) (bound bool, drops uint64) {
	want := fmt.Sprintf(":%04X", port)
	for _, name := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// sl local_address rem_address st ... drops
			f := strings.Fields(line)
			if len(f) < 13 || !strings.HasSuffix(f[1], want) {
				continue
			}
			bound = true
			if n, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
				drops += n
			}
		}
	}
	return bound, drops
}

// UDPDrops is how many datagrams the kernel dropped at the UDP socket
// bound to port (socket filters, full buffers); the test fails if there is
// none.
func UDPDrops(t testing.TB, port int) uint64 {
	t.Helper()
	bound, drops := udpSocket(port)
	if !bound {
		t.Fatalf("no UDP socket on port %d in /proc/net/udp", port)
	}
	return drops
}

// UDPBound reports whether a UDP socket of this machine is bound to port.
func UDPBound(port int) bool {
	bound, _ := udpSocket(port)
	return bound
}
