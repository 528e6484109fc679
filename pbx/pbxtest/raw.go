package pbxtest

import (
	"net"
	"strings"
	"testing"
	"time"
)

// RawPeer is a bare UDP socket speaking SIP by hand: what a scanner or a
// forger has, with no stack to retransmit, ACK or answer for it.
type RawPeer struct {
	conn net.Conn
}

// DialRaw opens a RawPeer to addr; it is closed when the test ends.
func DialRaw(t testing.TB, addr string) *RawPeer {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &RawPeer{conn: c}
}

// Send sends raw with its placeholders (see Hostile) filled in.
func (r *RawPeer) Send(t testing.TB, raw string) {
	t.Helper()
	if _, err := r.conn.Write([]byte(fill(raw, r.conn, "udp"))); err != nil {
		t.Fatal(err)
	}
}

// Answers is every message that arrives within d, whole.
func (r *RawPeer) Answers(d time.Duration) []string {
	var got []string
	buf := make([]byte, 65536)
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return got
		}
		got = append(got, string(buf[:n]))
	}
}

// Next is the next message to arrive within d, and when it came ("" if
// none did).
func (r *RawPeer) Next(d time.Duration) (string, time.Time) {
	buf := make([]byte, 65536)
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	n, err := r.conn.Read(buf)
	if err != nil {
		return "", time.Time{}
	}
	return string(buf[:n]), time.Now()
}

// StatusLines are the first lines of msgs.
func StatusLines(msgs []string) []string {
	lines := make([]string, len(msgs))
	for i, m := range msgs {
		lines[i], _, _ = strings.Cut(m, "\r\n")
	}
	return lines
}

// fill puts the sender's address and transport into raw's placeholders.
func fill(raw string, c net.Conn, network string) string {
	raw = strings.ReplaceAll(raw, "LOCAL", c.LocalAddr().String())
	return strings.ReplaceAll(raw, "TRANSPORT", strings.ToUpper(network))
}
