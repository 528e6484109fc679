package rawudp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

func open(t testing.TB) *Conn {
	t.Helper()
	c, err := Open(1)
	if errors.Is(err, os.ErrPermission) {
		t.Skip("no CAP_NET_RAW here:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// Datagrams sent through the raw socket arrive as if the source port's own
// socket had sent them: the right source address and port, the payload
// intact (so the UDP checksum was right, or the kernel would drop them),
// in order, and the source socket can still be answered.
func TestBatchLooksLikeTheSourceSocket(t *testing.T) {
	c := open(t)
	src := listen(t) // the leg's own socket: bound, never written by us
	dst := listen(t)
	srcAP := src.LocalAddr().(*net.UDPAddr).AddrPort()
	dstAP := dst.LocalAddr().(*net.UDPAddr).AddrPort()

	b := c.NewBatch()
	const n = 300 // more than one chunk and more than one sendmmsg
	for i := range n {
		hdr := []byte{0x80, 0, byte(i >> 8), byte(i)}
		payload := bytes.Repeat([]byte{byte(i)}, 160+i%3) // odd lengths too
		if !b.Add(srcAP, dstAP, hdr, payload) {
			t.Fatal("Add refused an IPv4 datagram")
		}
	}
	if b.Len() != n {
		t.Fatalf("Len %d", b.Len())
	}
	// More than a default socket buffer holds: read while sending.
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		dst.SetReadDeadline(time.Now().Add(2 * time.Second))
		for i := range n {
			m, from, err := dst.ReadFromUDPAddrPort(buf)
			if err != nil {
				got <- fmt.Errorf("datagram %d: %v", i, err)
				return
			}
			if from != srcAP {
				got <- fmt.Errorf("datagram %d from %v, want %v", i, from, srcAP)
				return
			}
			want := append([]byte{0x80, 0, byte(i >> 8), byte(i)}, bytes.Repeat([]byte{byte(i)}, 160+i%3)...)
			if !bytes.Equal(buf[:m], want) {
				got <- fmt.Errorf("datagram %d differs", i)
				return
			}
		}
		got <- nil
	}()
	for i := 0; i < n; i += 50 {
		// Flush in steps so the reader keeps up.
		sub := c.NewBatch()
		for j := i; j < i+50; j++ {
			sub.Add(srcAP, dstAP, []byte{0x80, 0, byte(j >> 8), byte(j)}, bytes.Repeat([]byte{byte(j)}, 160+j%3))
		}
		if err := sub.Flush(); err != nil || sub.Sent != 50 {
			t.Fatalf("flush: sent %d, %v", sub.Sent, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// The big batch: one Flush over several sendmmsg calls.
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if b.Sent != n || b.Len() != 0 {
		t.Fatalf("sent %d, %d left", b.Sent, b.Len())
	}
	// The batch is reused: nothing is allocated, per datagram or per flush.
	small := []byte{1, 2, 3}
	if a := testing.AllocsPerRun(10, func() {
		for range 100 {
			b.Add(srcAP, dstAP, small)
		}
		b.Flush()
	}); a > 0 && !raceEnabled {
		t.Errorf("%v allocations per 100 adds and a flush", a)
	}
}

func TestBatchRefusesWhatItCannotSend(t *testing.T) {
	c := open(t)
	b := c.NewBatch()
	v4 := netip.MustParseAddrPort("127.0.0.1:4000")
	v6 := netip.MustParseAddrPort("[::1]:4000")
	if b.Add(v6, v4, []byte{1}) || b.Add(v4, v6, []byte{1}) {
		t.Error("an IPv6 address was batched")
	}
	if b.Add(v4, v4, make([]byte, SlotSize)) {
		t.Error("an oversized datagram was batched")
	}
	if b.Len() != 0 {
		t.Errorf("Len %d", b.Len())
	}
}

// A batch flushed after its Conn closed sends nothing: the descriptor is
// not written after Close (its number may already name another file).
func TestFlushAfterCloseSendsNothing(t *testing.T) {
	c := open(t)
	b := c.NewBatch()
	dst := listen(t)
	dstAP := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	b.Add(netip.MustParseAddrPort("127.0.0.1:4000"), dstAP, []byte{1})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Flush after Close: %v, want net.ErrClosed", err)
	}
	if b.Sent != 0 || b.Failed != 1 || b.Len() != 0 {
		t.Fatalf("sent %d, failed %d, %d left", b.Sent, b.Failed, b.Len())
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// RFC 1071's example words, and a known UDP datagram.
func TestChecksum(t *testing.T) {
	// 127.0.0.1:1234 → 127.0.0.1:5678, payload "hi": computed by hand.
	udp := []byte{0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0a, 0x00, 0x00, 'h', 'i'}
	got := Checksum([4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 1}, udp)
	// Verify by folding the whole thing with the checksum in: must be 0xffff.
	udp[6], udp[7] = byte(got>>8), byte(got)
	var sum uint32 = 0x7f00 + 0x0001 + 0x7f00 + 0x0001 + 17 + uint32(len(udp))
	for i := 0; i+1 < len(udp); i += 2 {
		sum += uint32(udp[i])<<8 | uint32(udp[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Fatalf("checksum %#04x does not verify (folded %#04x)", got, sum)
	}
}

func BenchmarkBatch250(b *testing.B) {
	c := open(b)
	dst := listen(b)
	dstAP := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	hdr := make([]byte, 12)
	payload := make([]byte, 160)
	bt := c.NewBatch()
	b.ReportAllocs()
	for b.Loop() {
		for range 250 {
			bt.Add(src, dstAP, hdr, payload)
		}
		bt.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*250), "ns/packet")
}

// Batches are spread over the Conn's sockets in turn, so that shards
// flushing at the same time do not queue on one socket's write lock; two
// batches flushed at once from two goroutines both arrive whole.
func TestBatchesSpreadOverSockets(t *testing.T) {
	c, err := Open(2)
	if errors.Is(err, os.ErrPermission) {
		t.Skip("no CAP_NET_RAW here:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b1, b2, b3 := c.NewBatch(), c.NewBatch(), c.NewBatch()
	if b1.sock == b2.sock || b3.sock != b1.sock {
		t.Fatal("batches not spread over the two sockets in turn")
	}
	src, dst := listen(t), listen(t)
	if err := dst.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	srcAP := src.LocalAddr().(*net.UDPAddr).AddrPort()
	dstAP := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	const each = 100
	for i := range each {
		b1.Add(srcAP, dstAP, []byte{1, byte(i)})
		b2.Add(srcAP, dstAP, []byte{2, byte(i)})
	}
	errs := make(chan error, 2)
	for _, b := range []*Batch{b1, b2} {
		go func() { errs <- b.Flush() }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[byte]int{}
	buf := make([]byte, 64)
	_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
	for range 2 * each {
		n, err := dst.Read(buf)
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		if n == 2 {
			seen[buf[0]]++
		}
	}
	if seen[1] != each || seen[2] != each {
		t.Fatalf("datagrams per batch %v, want %d each", seen, each)
	}
}
