package pbx_test

import (
	"fmt"
	"net"
	"net/netip"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/internal/streamtest"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestHostileCorpusChangesNothing: a scanner's and a forger's worth of
// malformed requests over UDP and TCP — every mandatory header missing or
// duplicated for every method, in and out of dialog, bad CSeq and
// Content-Length, truncated, oversized, garbage, bad SDP, and requests into
// a live call with its Call-ID but wrong tags — get their 4xx where one is
// due, touch no call, publish no event, and the service then completes a
// normal call with tones both ways.
func TestHostileCorpusChangesNothing(t *testing.T) {
	// Each message comes over a connection of its own (a malformed one may
	// end it), 32 at a time: far more connections a second than one
	// address may open (TestStrangersCannotHoldConnections).
	p := pbxtest.Start(t, func(c *pbx.Config) { c.SIPStrangers.PerSecond = 1 << 20 })
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)
	callID, _, _ := ca.Dialog()
	before := len(p.Events.All())
	corpus := pbxtest.HostileCorpus(sippDomain, callID)
	for _, network := range []string{"udp", "tcp"} {
		got := pbxtest.SendHostile(p.Addr, network, corpus, time.Second)
		// Under -race on two busy cores an answer can take longer: what
		// was due an answer and got none is asked again, with more time.
		for i, h := range corpus {
			if h.Want != "" && got[i] == "" {
				got[i] = pbxtest.SendHostile(p.Addr, network, []pbxtest.Hostile{h}, 5*time.Second)[0]
			}
		}
		answered := 0
		for i, h := range corpus {
			if got[i] != "" {
				answered++
			}
			if h.Want != "" && !strings.Contains(got[i], " "+h.Want+" ") {
				t.Errorf("%s %s: answered %q, want %s", network, h.Name, got[i], h.Want)
			}
		}
		t.Logf("%s: %d hostile messages, %d answered", network, len(corpus), answered)
	}
	for _, e := range p.Events.All()[before:] {
		t.Errorf("hostile traffic caused event %s on %s", e.Type, e.Call)
	}
	talk(t, ca, cb)
	c := p.Phone(t, "demo", "202")
	cc, ca2 := connect(t, c, a)
	talk(t, cc, ca2)
	if n := p.Core().Calls(); n != 4 {
		t.Errorf("%d legs live, want the 4 of the two real calls", n)
	}
}

// TestAPeerThatStopsReadingIsDisconnected: a TCP peer floods OPTIONS and
// never reads the answers. Once its window is full it is disconnected
// (third_party/sipgo, patch 5) instead of each further answer holding a
// goroutine, and whatever its caller holds, for as long as the peer keeps
// the connection open; everyone else goes on being served.
func TestAPeerThatStopsReadingIsDisconnected(t *testing.T) {
	p := pbxtest.Start(t)
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	var flood strings.Builder
	for i := range 60000 {
		fmt.Fprintf(&flood, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-slow-%d\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:slow@%s>;tag=slow\r\nTo: <sip:%s>\r\nCall-ID: slow-%d\r\n"+
			"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", p.Addr, local, i, local, p.Addr, i)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(flood.String())); err == nil {
		// All of it went in: the PBX must hang up all the same.
		waitFor(t, 10*time.Second, "the PBX hangs up on a peer that reads nothing", func() bool { return streamtest.HungUp(conn) })
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the PBX stopped reading a peer that reads nothing, but did not hang up: %v", err)
	}
	// Every message read before the hang-up is still answered, each write
	// failing at once; under -race on a busy machine that takes seconds.
	// Without the hang-up they would wait for as long as the peer stays.
	hungUpAt := time.Now()
	deadline := hungUpAt.Add(30 * time.Second)
	defer func() {
		t.Logf("the writers were gone %v after the hang-up", time.Since(hungUpAt).Round(time.Millisecond))
	}()
	for w := sipWritersOverTCP(); len(w) > 0; w = sipWritersOverTCP() {
		if time.Now().After(deadline) {
			t.Fatalf("%d SIP writers still wait 30 s after the PBX hung up; the first:\n%s", len(w), w[0])
		}
		time.Sleep(20 * time.Millisecond)
	}

	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)
}

// sipWritersOverTCP is the stacks of this process's goroutines writing, or
// waiting to write, to a TCP or TLS SIP connection.
func sipWritersOverTCP() []string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	var writers []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "(*TCPConnection).Write(") {
			writers = append(writers, g)
		}
	}
	return writers
}

// TestStrangersCannotHoldConnections: TCP and TLS connections no request
// has authenticated over are few per address and short-lived; a phone's,
// proven by its REGISTER, stays. (Asterisk's tcpauthlimit and
// tcpauthtimeout.)
func TestStrangersCannotHoldConnections(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithTLS(t), func(c *pbx.Config) {
		c.SIPStrangers = core.StrangerLimits{Timeout: 2 * time.Second, PerAddress: 4}
	})
	secure := p.PhoneTLS(t, "demo", "200") // registered over TLS: proven
	bob := p.Phone(t, "demo", "201")

	idle := streamtest.Idle(t, p.Addr, 4)
	extra := streamtest.Idle(t, p.Addr, 1)[0]
	waitFor(t, time.Second, "a fifth stranger from the address is hung up on at once", func() bool { return streamtest.HungUp(extra) })
	for i, c := range idle {
		if streamtest.HungUp(c) {
			t.Fatalf("stranger %d hung up on before its time", i)
		}
	}
	waitFor(t, 5*time.Second, "strangers hung up on after 2 s", func() bool {
		for _, c := range idle {
			if !streamtest.HungUp(c) {
				return false
			}
		}
		return true
	})
	if got := p.Counter("callpark_sip_refused_connections_total", map[string]string{"reason": "unproven"}); got != 4 {
		t.Errorf("%v connections closed unproven, want the 4 idle ones (not the phone's)", got)
	}
	if got := p.Counter("callpark_sip_refused_connections_total", map[string]string{"reason": "per_address"}); got != 1 {
		t.Errorf("%v connections refused over the address's limit, want 1", got)
	}
	cb, cs := connect(t, bob, secure)
	talk(t, cb, cs)
}

// TestConnectionsPerSecondAreBounded: an address opening connections
// faster than StrangerLimits.PerSecond has the excess closed at once, each
// of which would otherwise cost a goroutine, a buffer and, over TLS, a
// handshake; other addresses are not held up.
func TestConnectionsPerSecondAreBounded(t *testing.T) {
	p := pbxtest.Start(t, func(c *pbx.Config) { c.SIPStrangers.PerSecond = 5 })
	for range 12 {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close() // never a stranger for long: only the rate can refuse it
	}
	waitFor(t, 2*time.Second, "connections over the rate refused", func() bool {
		return p.Counter("callpark_sip_refused_connections_total", map[string]string{"reason": "rate"}) >= 6
	})
	if got := p.Counter("callpark_sip_refused_connections_total", map[string]string{"reason": "rate"}); got > 7 {
		t.Errorf("%v of 12 connections refused for the rate of 5 a second, want 7 at most", got)
	}
}

// TestTrustedAddressesAreNeverStrangers: a --trusted address (an office
// NAT, a carrier that only pings over TCP) is held to neither limit.
func TestTrustedAddressesAreNeverStrangers(t *testing.T) {
	p := pbxtest.Start(t, func(c *pbx.Config) {
		c.SIPStrangers = core.StrangerLimits{Timeout: time.Second, PerAddress: 2}
		c.Bans.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	idle := streamtest.Idle(t, p.Addr, 5)
	time.Sleep(2 * time.Second) // twice the strangers' time
	for i, c := range idle {
		if streamtest.HungUp(c) {
			t.Errorf("connection %d from a trusted address hung up on", i)
		}
	}
}

// TestNoAnswerGoesWhereAViaPoints: requests over TCP whose Via names
// another host, from a connection closed at once, make the PBX connect
// nowhere: not to the host the Via names (a reflector into the internal
// network), and it goes on serving.
func TestNoAnswerGoesWhereAViaPoints(t *testing.T) {
	p := pbxtest.Start(t)
	victim, reached := streamtest.Victim(t)
	streamtest.HangUpOnRequests(t, p.Addr, victim, "OPTIONS", 20, 50)
	select {
	case from := <-reached:
		t.Fatalf("the PBX connected to the Via of a closed connection's request (from %v)", from)
	case <-time.After(2 * time.Second):
	}
	a := p.Phone(t, "demo", "200")
	b := p.Phone(t, "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)
}
