package pbx_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// FuzzSIPIngress throws raw bytes at a running callpark's SIP port, the
// whole ingress behind it: sipgo's parser and transaction layer, the
// ingress guard, the registrar, diago and the core's handlers, with the
// control plane deciding on whatever gets that far (the sample trunk is
// 127.0.0.1, so INVITEs to its DID reach the call path unauthenticated).
// After each input an OPTIONS must still be answered: a crash or a wedged
// server fails the input that caused it. Seeded with the hostile corpus.
//
//	go test -run '^$' -fuzz FuzzSIPIngress -fuzztime 10m ./pbx
func FuzzSIPIngress(f *testing.F) {
	for _, h := range pbxtest.HostileCorpus(sippDomain, "") {
		f.Add([]byte(h.Raw))
	}
	did := "sip:+15551230000@" + sippDomain
	trunk := "INVITE " + did + " SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-f1\r\nFrom: <sip:+15557654321@carrier>;tag=c1\r\n" +
		"To: <" + did + ">\r\nCall-ID: fuzz-trunk@corpus\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:carrier@LOCAL>\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
	for _, sdp := range []string{
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\na=sendonly\r\n",
	} {
		f.Add([]byte(fmt.Sprintf(trunk, len(sdp), sdp)))
	}
	// A forged internal leg (cluster.go): the signature cannot be right.
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	internal := "INVITE sip:n1_00000000-0000-0000-0000-000000000000@" + sippDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-f2\r\n" +
		"From: <sip:callpark@LOCAL>;tag=i1\r\nTo: <sip:n1@" + sippDomain + ">\r\nCall-ID: fuzz-internal@corpus\r\nCSeq: 1 INVITE\r\n" +
		"Max-Forwards: 70\r\nContact: <sip:callpark@LOCAL>\r\nX-Callpark-Internal: join;customer=demo;sig=00\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
	f.Add([]byte(fmt.Sprintf(internal, len(sdp), sdp)))

	// One PBX for the whole run. Bans are off: the fuzzer's failed logins
	// would otherwise ban the address it fuzzes from (core/ban is tested
	// on its own).
	p := pbxtest.Start(f, func(c *pbx.Config) { c.Bans.Failures = -1 })
	conn, err := net.Dial("udp", p.Addr)
	if err != nil {
		f.Fatal(err)
	}
	defer conn.Close()
	local := []byte(conn.LocalAddr().String())
	var seq atomic.Uint64
	buf := make([]byte, 65536)

	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.ReplaceAll(data, []byte("LOCAL"), local)
		if _, err := conn.Write(data); err != nil {
			return // too big for a datagram
		}
		if err := ping(conn, buf, fmt.Sprintf("fuzz-probe-%d", seq.Add(1))); err != nil {
			t.Fatalf("callpark stopped answering after %q: %v", truncateFuzz(data), err)
		}
	})
}

// ping sends an OPTIONS with Call-ID id over conn, a UDP socket connected
// to the PBX, and waits up to 3 s for its 200 (buf: room to read into).
func ping(conn net.Conn, buf []byte, id string) error {
	if _, err := fmt.Fprintf(conn, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s\r\n"+
		"From: <sip:probe@%s>;tag=p\r\nTo: <sip:%s>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		sippDomain, conn.LocalAddr(), id, sippDomain, sippDomain, id); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("OPTIONS %s: no answer: %w", id, err)
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, "SIP/2.0 200") && strings.Contains(msg, "Call-ID: "+id+"\r\n") {
			return nil
		}
	}
}

func truncateFuzz(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}
