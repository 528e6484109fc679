package core

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/stateless"
)

// An answered INVITE's transactions, once terminated, let go of their
// messages at once. RFC 6026 keeps both INVITE transactions for 64·T1
// after a 2xx ("Accepted"), and sipgo v1.7.3 left their Timer L and
// Timer M running after Terminate: every parked call's INVITE, 200 OK and
// outbound INVITE stayed in memory 32 s after its ACK (third_party/sipgo).
func TestTerminatedInviteTransactionsFreeTheirMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	// The server keeps weak pointers only: what it received and answered.
	served := make(chan [2]weak.Pointer[byte], 1)
	addr := sipServer(t, func(srv *sipgo.Server) {
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
			res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", []byte("v=0\r\n"))
			if err := tx.Respond(res); err != nil {
				t.Error(err)
			}
			tx.Terminate() // as the core does once the ACK is in
			served <- [2]weak.Pointer[byte]{weakMsg(req.Body()), weakMsg(res.Body())}
		})
	}).LocalAddr().String()

	clientUA, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer clientUA.Close()
	client, err := sipgo.NewClient(clientUA, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	sent, answer := dialOnce(ctx, t, client, addr)

	var weaks []weak.Pointer[byte]
	select {
	case w := <-served:
		weaks = append(weaks, w[0], w[1], sent, answer)
	case <-time.After(5 * time.Second):
		t.Fatal("the INVITE was not served")
	}

	names := []string{"the received INVITE", "the 200 OK sent", "the INVITE sent", "the 200 OK received"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		var alive []string
		for i, w := range weaks {
			if w.Value() != nil {
				alive = append(alive, names[i])
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminated transactions still hold %v 5 s later", alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sipServer serves SIP on a loopback UDP socket with the handlers handle
// registers, until the test ends; it returns the socket.
func sipServer(t *testing.T, handle func(*sipgo.Server)) *net.UDPConn {
	t.Helper()
	srv := sipgoServer(t)
	handle(srv)
	conn := loopbackUDP(t)
	go srv.ServeUDP(conn)
	return conn
}

// sipgoServer is a bare sipgo server (no listener yet), closed with the test.
func sipgoServer(t *testing.T, opts ...sipgo.UserAgentOption) *sipgo.Server {
	t.Helper()
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// dialOnce sends an INVITE with a body to addr, waits for its 200 OK and
// terminates the client transaction; it returns weak pointers to the
// INVITE's and the answer's bodies.
func dialOnce(ctx context.Context, t *testing.T, client *sipgo.Client, addr string) (sent, answer weak.Pointer[byte]) {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "200", Host: "127.0.0.1"})
	req.SetDestination(addr)
	req.SetBody([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"))
	tx, err := client.TransactionRequest(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	select {
	case res := <-tx.Responses():
		if res.StatusCode != sip.StatusOK {
			t.Fatalf("INVITE answered %d", res.StatusCode)
		}
		return weakMsg(req.Body()), weakMsg(res.Body())
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the INVITE")
	}
	return
}

// weakMsg is a weak pointer to a message's body: alive while anything
// holds the message.
func weakMsg(body []byte) weak.Pointer[byte] {
	return weak.Make(&body[0])
}

// A completed non-INVITE server transaction lets go of its request at its
// final response, not 32 s later with Timer J (three per park+retrieve
// cycle: the REFER and two BYEs, most of the heap under a cycle load), and
// over UDP of itself and its parsed response too (sipgo patch 8: what is
// kept is the response's bytes); it still answers a retransmission of the
// request with that response, byte for byte, without the handler.
func TestCompletedServerTransactionsKeepOnlyTheirAnswer(t *testing.T) {
	type served struct {
		req, res weak.Pointer[byte]
		tx       weak.Pointer[sip.ServerTx]
	}
	received := make(chan served, 10)
	conn := sipServer(t, func(srv *sipgo.Server) {
		srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
			res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", []byte("Signal=5\r\n"))
			if err := tx.Respond(res); err != nil {
				t.Error(err)
			}
			received <- served{weakMsg(req.Body()), weakMsg(res.Body()), weakTx(tx)}
		})
	})

	phone := loopbackUDP(t)
	sendInfo(t, phone, conn, "completed-1", 1, "Signal=5\r\nDur=1\r\n")
	first := awaitDatagram(t, phone)
	var s served
	select {
	case s = <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("the INFO was not served")
	}
	names := []string{"its request", "its response", "itself"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		var alive []string
		for i, gone := range []bool{s.req.Value() == nil, s.res.Value() == nil, s.tx.Value() == nil} {
			if !gone {
				alive = append(alive, names[i])
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the completed transaction still holds %v 5 s later", alive)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The phone did not hear the 200 OK: it retransmits.
	sendInfo(t, phone, conn, "completed-1", 1, "Signal=5\r\nDur=1\r\n")
	if again := awaitDatagram(t, phone); string(again) != string(first) {
		t.Fatalf("the retransmission was answered\n%s\nnot as before\n%s", again, first)
	}
	if n := len(received); n != 0 {
		t.Fatalf("a retransmission reached the handler (%d more)", n)
	}
	// A new request (next CSeq, new branch) is a new transaction.
	sendInfo(t, phone, conn, "completed-1", 2, "Signal=6\r\nDur=1\r\n")
	awaitOK(t, phone, "completed-1")
	select {
	case <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("the next INFO did not reach the handler")
	}
}

// weakTx is a weak pointer to a server transaction: alive while anything
// holds it.
func weakTx(tx sip.ServerTransaction) weak.Pointer[sip.ServerTx] {
	st, _ := tx.(*sip.ServerTx)
	return weak.Make(st)
}

// awaitDatagram reads the phone's next datagram.
func awaitDatagram(t *testing.T, phone *net.UDPConn) []byte {
	t.Helper()
	phone.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2048)
	n, _, err := phone.ReadFrom(b)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return b[:n]
}

// A request refused statelessly (Respond, then Terminate: package
// stateless) leaves nothing behind, not even the record of patch 8: a
// flood of refused requests, each with a branch of its own, must not fill
// memory for 32 s. Its retransmission is refused anew.
func TestStatelessRefusalsKeepNothing(t *testing.T) {
	refused := make(chan weak.Pointer[byte], 10)
	conn := sipServer(t, func(srv *sipgo.Server) {
		srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
			res := sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", []byte("no\r\n"))
			if err := stateless.Respond(req, tx, res); err != nil {
				t.Error(err)
			}
			refused <- weakMsg(res.Body())
		})
	})
	phone := loopbackUDP(t)
	for i := range 2 {
		sendInfo(t, phone, conn, "refused-1", 1, "Signal=5\r\nDur=1\r\n")
		if res, err := sip.ParseMessage(awaitDatagram(t, phone)); err != nil || res.(*sip.Response).StatusCode != sip.StatusForbidden {
			t.Fatalf("answer %d: %v, %v; want 403", i+1, res, err)
		}
		var w weak.Pointer[byte]
		select {
		case w = <-refused:
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d did not reach the handler: kept from the first", i+1)
		}
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GC(); w.Value() != nil; runtime.GC() {
			if time.Now().After(deadline) {
				t.Fatal("the refusal is still held 5 s later")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
