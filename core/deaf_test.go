package core

import (
	"net"
	"testing"
	"time"

	"github.com/emiago/diago/media"
)

// rtpOf is a minimal RTP packet of payload type pt.
func rtpOf(pt byte) []byte {
	p := make([]byte, 12+4)
	p[0] = 0x80
	p[1] = pt
	return p
}

// A deaf leg's socket drops audio and keeps telephone events; once hearing
// again it reads everything. The socket is diago's own, reached as
// setDeaf does: this fails if a diago upgrade moved it.
func TestDeafLegKeepsOnlyTelephoneEvents(t *testing.T) {
	sess, err := media.NewMediaSession(net.IPv4(127, 0, 0, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	phone, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: sess.Laddr.IP, Port: sess.Laddr.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	read := func() (pt byte, ok bool) {
		buf := make([]byte, 1500)
		n, err := sess.ReadRTPRawDeadline(buf, time.Now().Add(200*time.Millisecond))
		if err != nil || n < 2 {
			return 0, false
		}
		return buf[1] & 0x7f, true
	}
	send := func(pts ...byte) {
		for _, pt := range pts {
			if _, err := phone.Write(rtpOf(pt)); err != nil {
				t.Fatal(err)
			}
		}
	}

	if err := setDeaf(sess, true, 101); err != nil {
		t.Fatal(err)
	}
	send(0, 8, 101|0x80, 0, 101, 13)
	for _, want := range []byte{101, 101} {
		if pt, ok := read(); !ok || pt != want {
			t.Fatalf("deaf leg read payload type %d (%v), want %d", pt, ok, want)
		}
	}
	if pt, ok := read(); ok {
		t.Fatalf("deaf leg read payload type %d, want nothing more", pt)
	}

	if err := setDeaf(sess, true, -1); err != nil { // no telephone-event negotiated
		t.Fatal(err)
	}
	send(101, 0)
	if pt, ok := read(); ok {
		t.Fatalf("deaf leg without telephone-event read payload type %d", pt)
	}

	if err := setDeaf(sess, false, -1); err != nil {
		t.Fatal(err)
	}
	if err := setDeaf(sess, false, -1); err != nil { // no filter left: still fine
		t.Fatal(err)
	}
	send(0, 8)
	for _, want := range []byte{0, 8} {
		if pt, ok := read(); !ok || pt != want {
			t.Fatalf("hearing leg read payload type %d (%v), want %d", pt, ok, want)
		}
	}
}
