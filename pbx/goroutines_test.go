package pbx_test

import (
	"fmt"
	"net"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestSIPMessagesReuseWaitingGoroutines: the SIP transaction layer hands
// each message to the core's goroutine pool (third_party/sipgo patch 4),
// where a goroutine that has handled one waits for the next. Messages one
// after another start next to no goroutines; wired without the pool, each
// would start one.
func TestSIPMessagesReuseWaitingGoroutines(t *testing.T) {
	p := pbxtest.Start(t)
	conn, err := net.Dial("udp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	buf := make([]byte, 65536)
	ping := func(n int) {
		t.Helper()
		id := fmt.Sprintf("reuse-%d", n)
		if _, err := fmt.Fprintf(conn, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s\r\n"+
			"From: <sip:probe@%s>;tag=p\r\nTo: <sip:%s>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			sippDomain, local, id, sippDomain, sippDomain, id); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("OPTIONS %s: no answer: %v", id, err)
			}
			if msg := string(buf[:n]); strings.HasPrefix(msg, "SIP/2.0 200") && strings.Contains(msg, "Call-ID: "+id+"\r\n") {
				return
			}
		}
	}
	ping(0) // the path is warm

	const messages = 100
	created := goroutinesCreated()
	for n := range messages {
		ping(n + 1)
	}
	if got := goroutinesCreated() - created; got > messages/4 {
		t.Errorf("%d OPTIONS, one after another, started %d goroutines: each should find the last one's waiting", messages, got)
	}
}

func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
