package pbx_test

import (
	"fmt"
	"net"
	"runtime/metrics"
	"testing"

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
	buf := make([]byte, 65536)
	exchange := func(n int) {
		t.Helper()
		if err := ping(conn, buf, fmt.Sprintf("reuse-%d", n)); err != nil {
			t.Fatal(err)
		}
	}
	exchange(0) // the path is warm

	const messages = 100
	created := goroutinesCreated()
	for n := range messages {
		exchange(n + 1)
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
