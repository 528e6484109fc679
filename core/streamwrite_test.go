package core

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/internal/streamtest"
)

// A SIP peer over TCP that stops reading its answers is disconnected
// (third_party/sipgo, patch 5), not left holding the goroutines that
// answer it. Here one answer fills the peer's window: its write times out
// and the connection is closed.
func TestAStreamWriteThatTimesOutClosesTheConnection(t *testing.T) {
	big := make([]byte, 16<<20) // more than the socket buffers hold
	answered := make(chan error, 1)
	addr := tcpSIPServer(t, 300*time.Millisecond, func(req *sip.Request, tx sip.ServerTransaction) {
		answered <- tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", big))
	})
	peer := slowPeer(t, addr)
	sendInfoOver(t, peer, "big", 1)

	select {
	case err := <-answered:
		if !errors.Is(err, sip.ErrStreamStalled) {
			t.Fatalf("answer to a peer that does not read: %v, want %v", err, sip.ErrStreamStalled)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer's write still waits for a peer that does not read")
	}
	awaitClosed(t, peer)
}

// Here every answer is small but the peer floods requests: once its window
// is full, the 65th message waiting to be written closes the connection,
// long before the write timeout (a minute here), and no writer is left
// waiting.
func TestMessagesQueuedOnAStalledStreamCloseIt(t *testing.T) {
	var mu sync.Mutex
	answers := map[string]int{}
	addr := tcpSIPServer(t, time.Minute, func(req *sip.Request, tx sip.ServerTransaction) {
		err := tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", make([]byte, 16<<10)))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			answers["sent"]++
		case errors.Is(err, sip.ErrStreamStalled):
			answers["stalled"]++
		default:
			answers["failed"]++
		}
	})
	peer := slowPeer(t, addr)
	var flood strings.Builder
	for n := range 3000 {
		flood.WriteString(infoOver(peer, "flood", n+1))
	}
	_ = peer.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = peer.Write([]byte(flood.String())) // all of it, or until the connection closes

	awaitClosed(t, peer)
	stalled := func() int {
		mu.Lock()
		defer mu.Unlock()
		return answers["stalled"]
	}
	// The handlers that found the stream stalled may still be on their way
	// back from writing.
	deadline := time.Now().Add(5 * time.Second)
	for streamWriters() > 0 || stalled() == 0 {
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%d writers still wait on a closed stream; answers: %v", streamWriters(), answers)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("answers: %v", answers)
}

// streamWriters counts the goroutines writing (or waiting to write) to a
// TCP or TLS SIP connection.
func streamWriters() int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return strings.Count(b.String(), "(*TCPConnection).Write(")
}

// tcpSIPServer serves SIP over TCP on loopback, answering INFO with
// answer, with SIP writes bounded by writeTimeout; it returns the address.
func tcpSIPServer(t *testing.T, writeTimeout time.Duration, answer func(*sip.Request, sip.ServerTransaction)) string {
	t.Helper()
	srv := sipgoServer(t, sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerWriteTimeout(writeTimeout)))
	srv.OnInfo(answer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go srv.ServeTCP(l)
	return l.Addr().String()
}

// slowPeer connects to addr with a small receive buffer and never reads
// until awaitClosed.
func slowPeer(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetReadBuffer(4096)
	t.Cleanup(func() { tc.Close() })
	return tc
}

// infoOver is an out-of-dialog INFO from peer, transaction n of callID.
func infoOver(peer net.Conn, callID string, n int) string {
	return "INFO sip:200@127.0.0.1 SIP/2.0\r\n" +
		fmt.Sprintf("Via: SIP/2.0/TCP %s;branch=z9hG4bK-%s-%d\r\n", peer.LocalAddr(), callID, n) +
		"From: <sip:100@127.0.0.1>;tag=a\r\nTo: <sip:200@127.0.0.1>\r\n" +
		fmt.Sprintf("Call-ID: %s-%d\r\nCSeq: 1 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", callID, n)
}

func sendInfoOver(t *testing.T, peer net.Conn, callID string, n int) {
	t.Helper()
	if _, err := peer.Write([]byte(infoOver(peer, callID, n))); err != nil {
		t.Fatal(err)
	}
}

// awaitClosed waits for the server's end of peer to close.
func awaitClosed(t *testing.T, peer net.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !streamtest.HungUp(peer) {
		if time.Now().After(deadline) {
			t.Fatal("the connection to a peer that does not read is still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A request over TCP whose connection has closed by the time it is
// answered is not answered by connecting to the host its Via names: that
// host is whatever the sender wrote (another machine, a port on the
// internal network), and a server that connects there is a reflector.
// Nor to anywhere else (third_party/sipgo, patch 6): the requester hung up.
func TestAnswersNeverConnectToTheViaOfAClosedConnection(t *testing.T) {
	victim, reached := streamtest.Victim(t)
	answering := make(chan struct{}, 1000)
	// A request whose connection closed before its transaction was made is
	// not handed to the handler: the transaction layer reports it.
	gone := &lineCounter{substr: sip.ErrRequesterGone.Error()}
	srv := sipgoServer(t, sipgo.WithUserAgentTransactionLayerOptions(
		sip.WithTransactionLayerLogger(slog.New(slog.NewTextHandler(gone, nil)))))
	srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		answering <- struct{}{}
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go srv.ServeTCP(l)
	streamtest.HangUpOnRequests(t, l.Addr().String(), victim, "INFO", 20, 50)
	select {
	case from := <-reached:
		t.Fatalf("the server connected to the Via of a closed connection's request (from %v)", from)
	case <-time.After(2 * time.Second):
	}
	if len(answering) == 0 && gone.count() == 0 {
		t.Fatal("no request was handled after its connection closed: the test proves nothing")
	}
	t.Logf("%d answered, %d found their connection closed", len(answering), gone.count())
}

// lineCounter counts the writes (log lines) that contain substr.
type lineCounter struct {
	substr string
	mu     sync.Mutex
	n      int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.substr) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
