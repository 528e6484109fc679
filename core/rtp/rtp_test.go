package rtp

import (
	"context"
	"github.com/pion/srtp/v3"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// start runs an engine until the test ends.
func start(t testing.TB, pollers int) *Engine {
	t.Helper()
	return startWith(t, Config{Host: loopback, Pollers: pollers})
}

func startWith(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// inbox collects what a leg receives.
type inbox struct {
	mu   sync.Mutex
	got  []Packet
	more chan struct{}
}

func newInbox() *inbox { return &inbox{more: make(chan struct{}, 1000)} }

func (b *inbox) ReceiveRTP(_ *Conn, p *Packet) {
	cp := *p
	cp.Payload = append([]byte(nil), p.Payload...)
	b.mu.Lock()
	b.got = append(b.got, cp)
	b.mu.Unlock()
	b.more <- struct{}{}
}

// next waits for the next packet.
func (b *inbox) next(t *testing.T) Packet {
	t.Helper()
	select {
	case <-b.more:
	case <-time.After(2 * time.Second):
		t.Fatal("no packet arrived")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.got[0]
	b.got = b.got[1:]
	return p
}

func (b *inbox) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-b.more:
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Fatalf("unexpected packet PT %d", b.got[0].PT)
	case <-time.After(within):
	}
}

func packet(pt uint8, seq uint16, payload string) []byte {
	b := make([]byte, HeaderLen+len(payload))
	PutHeader(b, pt, seq == 0, seq, uint32(seq)*160, 0x1234)
	copy(b[HeaderLen:], payload)
	return b
}

func TestTwoLegsTalk(t *testing.T) {
	e := startWith(t, Config{Host: loopback, Pollers: 2, Spares: -1})
	ra, rb := newInbox(), newInbox()
	a, err := e.Open(ra)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Open(rb)
	if err != nil {
		t.Fatal(err)
	}
	if a.Local().Port()%2 != 0 || b.Local().Port()%2 != 0 {
		t.Errorf("RTP ports %d, %d: want even", a.Local().Port(), b.Local().Port())
	}
	// RTCP is bound on the port above, so nobody else takes it.
	if _, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(a.Local().Port()) + 1}); err == nil {
		t.Error("the RTCP port of a leg is free")
	}
	// Nothing goes out before the far end is known.
	if err := a.Write(packet(0, 1, "x")); err != nil {
		t.Fatal(err)
	}
	a.SetRemote(b.Local())
	b.SetRemote(a.Local())
	for i := range 3 {
		if err := a.Write(packet(0, uint16(i), "hello")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		p := rb.next(t)
		if p.PT != 0 || p.Seq != uint16(i) || string(p.Payload) != "hello" || p.From != a.Local() || p.Marker != (i == 0) || p.SSRC != 0x1234 {
			t.Fatalf("packet %d: %+v", i, p)
		}
	}
	if err := b.Write(packet(8, 9, "back")); err != nil {
		t.Fatal(err)
	}
	if p := ra.next(t); p.PT != 8 || string(p.Payload) != "back" {
		t.Fatalf("reply %+v", p)
	}
	// Not RTP: dropped before any receiver.
	raw, _ := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(b.Local()))
	defer raw.Close()
	raw.Write([]byte("not rtp at all"))
	raw.Write([]byte{0x80})
	rb.none(t, 100*time.Millisecond)

	a.Close()
	a.Close()
	if err := a.Write(packet(0, 1, "x")); err != ErrClosed {
		t.Fatalf("write after close: %v", err)
	}
	// With no spare pairs kept, its sockets are gone soon after.
	deadline := time.Now().Add(2 * time.Second)
	for {
		l, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(a.Local()))
		if err == nil {
			l.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed leg's port is still bound")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPacketParse(t *testing.T) {
	var p Packet
	// CSRCs, an extension and padding around a 3-byte payload.
	b := []byte{0xb2, 0x88, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1,
		1, 1, 1, 1, 2, 2, 2, 2, // two CSRCs
		0xbe, 0xde, 0, 1, 9, 9, 9, 9, // extension of one word
		'a', 'b', 'c', 0, 0, 3} // payload, 3 bytes of padding
	if err := p.parse(b); err != nil {
		t.Fatal(err)
	}
	if p.PT != 8 || !p.Marker || p.Seq != 7 || p.TS != 9 || p.SSRC != 1 || string(p.Payload) != "abc" {
		t.Fatalf("%+v", p)
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // version 1
		{0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},             // 15 CSRCs missing
		{0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},       // short extension
		{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'x', 200}} { // padding past the header
		if err := p.parse(bad); err == nil {
			t.Errorf("parsed %x", bad)
		}
	}
}

// FuzzPacket: every datagram a leg's socket gets is parsed; never a panic.
func FuzzPacket(f *testing.F) {
	f.Add(packet(0, 1, "hello"))
	f.Add([]byte{0xb2, 0x88, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0xbe, 0xde, 0, 1, 9, 9, 9, 9, 'a', 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if p.parse(b) == nil && len(p.Payload) > len(b) {
			t.Fatal("payload beyond the packet")
		}
	})
}

func TestSecureLegs(t *testing.T) {
	e := start(t, 1)
	ra, rb := newInbox(), newInbox()
	a, _ := e.Open(ra)
	b, _ := e.Open(rb)
	a.SetRemote(b.Local())
	b.SetRemote(a.Local())
	ka, err := NewKey(DefaultSuite)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := NewKey(DefaultSuite)
	ctx := func(k string) *srtp.Context {
		c, err := NewContext(DefaultSuite, k)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a.Secure(ctx(ka), ctx(kb))
	b.Secure(ctx(kb), ctx(ka))
	if !a.Secured() {
		t.Fatal("not secured")
	}
	// What goes on the wire is not the plain packet.
	spy, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer spy.Close()
	a.SetRemote(spy.LocalAddr().(*net.UDPAddr).AddrPort())
	a.Write(packet(0, 5, "secret audio"))
	buf := make([]byte, 1500)
	spy.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := spy.ReadFrom(buf)
	if err != nil || n != HeaderLen+len("secret audio")+10 || strings.Contains(string(buf[:n]), "secret") {
		t.Fatalf("on the wire: %d bytes %q (%v)", n, buf[:n], err)
	}
	a.SetRemote(b.Local())
	a.Write(packet(0, 6, "secret audio"))
	if p := rb.next(t); string(p.Payload) != "secret audio" || p.Seq != 6 {
		t.Fatalf("decrypted %+v", p)
	}
	// A plain packet to a secure leg fails authentication: dropped.
	plain, _ := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(b.Local()))
	defer plain.Close()
	plain.Write(packet(0, 7, "forged"))
	rb.none(t, 100*time.Millisecond)
	if _, err := NewContext(DefaultSuite, "c2hvcnQ="); err == nil {
		t.Fatal("a short key made a context")
	}
	if _, err := NewContext("AEAD_AES_256_GCM", ka); err == nil {
		t.Fatal("an unsupported suite made a context")
	}
}

// TestDeafLegKeepsOnlyTelephoneEvents, with the filters loaded as eBPF
// (where the process may) and classic ones.
func TestDeafLegKeepsOnlyTelephoneEvents(t *testing.T) {
	t.Run("ebpf", func(t *testing.T) { testDeaf(t, false) })
	t.Run("classic", func(t *testing.T) { testDeaf(t, true) })
}

func testDeaf(t *testing.T, classic bool) {
	e := start(t, 1)
	e.progs.failed = classic
	r := newInbox()
	c, _ := e.Open(r)
	phone, _ := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(c.Local()))
	defer phone.Close()
	send := func(pts ...uint8) {
		for _, pt := range pts {
			phone.Write(packet(pt, 1, "data"))
		}
	}
	expect := func(pts ...uint8) {
		t.Helper()
		for _, want := range pts {
			if p := r.next(t); p.PT != want {
				t.Fatalf("read payload type %d, want %d", p.PT, want)
			}
		}
		r.none(t, 100*time.Millisecond)
	}
	if err := c.SetDeaf(true, 101); err != nil {
		t.Fatal(err)
	}
	if !c.Deaf() {
		t.Fatal("not deaf")
	}
	send(0, 8, 101, 0, 101, 13)
	expect(101, 101)
	if err := c.SetDeaf(true, -1); err != nil { // no telephone-event negotiated
		t.Fatal(err)
	}
	send(101, 0)
	expect()
	if err := c.SetDeaf(false, -1); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeaf(false, -1); err != nil {
		t.Fatal(err)
	}
	send(0, 8)
	expect(0, 8)
}

// TestManyLegsNoGoroutines: a thousand legs cost no goroutine and two
// descriptors each, all released on close when no spares are kept.
func TestManyLegsNoGoroutines(t *testing.T) {
	e := startWith(t, Config{Host: loopback, Pollers: 2, Spares: -1})
	fds := func() int { d, _ := os.ReadDir("/proc/self/fd"); return len(d) }
	before := fds()
	var conns []*Conn
	r := newInbox()
	for range 1000 {
		c, err := e.Open(r)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if d := fds() - before; d != 2000 {
		t.Errorf("%d descriptors for 1000 legs, want 2000", d)
	}
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for fds() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d := fds() - before; d != 0 {
		t.Errorf("%d descriptors left after closing every leg", d)
	}
}

// BenchmarkForward is a bridged packet: read by one leg's poller, written
// by the other leg.
func BenchmarkForward(b *testing.B) {
	e := start(b, 1)
	fw := &forwarder{done: make(chan struct{}, 1)}
	in, _ := e.Open(fw)
	out, _ := e.Open(newInbox())
	sink, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer sink.Close()
	out.SetRemote(sink.LocalAddr().(*net.UDPAddr).AddrPort())
	fw.to = out
	phone, _ := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(in.Local()))
	defer phone.Close()
	pkt := packet(0, 1, strings.Repeat("x", 160))
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		phone.Write(pkt)
		<-fw.done
		sink.ReadFrom(buf)
	}
}

type forwarder struct {
	to   *Conn
	buf  [1500]byte
	done chan struct{}
}

func (f *forwarder) ReceiveRTP(_ *Conn, p *Packet) {
	PutHeader(f.buf[:], p.PT, p.Marker, p.Seq, p.TS, 1)
	n := copy(f.buf[HeaderLen:], p.Payload)
	f.to.Write(f.buf[:HeaderLen+n])
	f.done <- struct{}{}
}
