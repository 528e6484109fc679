package pbxtest

import (
	"bufio"
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

// UDPDrops is how many datagrams the kernel dropped at the UDP socket
// bound to port on this machine (socket filters, full buffers): the drops
// column of /proc/net/udp and udp6.
func UDPDrops(t testing.TB, port int) uint64 {
	t.Helper()
	want := fmt.Sprintf(":%04X", port)
	var total uint64
	found := false
	for _, name := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st ... drops
			if len(fields) < 13 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			n, err := strconv.ParseUint(fields[len(fields)-1], 10, 64)
			if err != nil {
				continue
			}
			total += n
			found = true
		}
		f.Close()
	}
	if !found {
		t.Fatalf("no UDP socket on port %d in /proc/net/udp", port)
	}
	return total
}

// UDPBound reports whether a UDP socket of this machine is bound to port.
func UDPBound(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, name := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 2 && strings.HasSuffix(f[1], want) {
				return true
			}
		}
	}
	return false
}
