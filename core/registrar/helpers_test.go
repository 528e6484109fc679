package registrar

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

const testDomain = "pbx.test"

// testDir is a Directory of "user@domain" → password, all of customer "acme".
type testDir map[string]string

func (d testDir) Account(domain, user string) (string, string, bool) {
	pw, ok := d[user+"@"+domain]
	return "acme", pw, ok
}

var testAccounts = testDir{
	"200@" + testDomain: "secret200",
	"201@" + testDomain: "secret201",
	"300@other.example": "secret300",
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type change struct {
	customer, account string
	contacts          []Binding
}

// testPBX is a registrar served by sipgo on a random UDP port of 127.0.0.1.
type testPBX struct {
	r        *Registrar
	addr     string
	changes  chan change
	failures chan string
}

func startPBX(t *testing.T, opts Options) *testPBX {
	t.Helper()
	p := &testPBX{changes: make(chan change, 1000), failures: make(chan string, 1000)}
	opts.Log = testLogger()
	opts.OnChange = func(customer, account string, contacts []Binding) {
		p.changes <- change{customer, account, contacts}
	}
	opts.OnAuthFailure = func(reason string) { p.failures <- reason }
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.LocalAddrs = append(opts.LocalAddrs, conn.LocalAddr().String())
	p.r = New(func() Directory { return testAccounts }, opts)

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("callpark"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(p.r.HandleRegister)
	// INVITE and SUBSCRIBE stand for the requests the PBX authenticates: on
	// success they are answered 200 with the identity in X-Identity.
	authOK := func(req *sip.Request, tx sip.ServerTransaction) {
		id, ok := p.r.Authenticate(req, tx)
		if !ok {
			return
		}
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Identity", id.Customer+"/"+id.Account+"@"+id.Domain))
		_ = tx.Respond(res)
	}
	srv.OnInvite(authOK)
	srv.OnSubscribe(authOK)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})

	p.addr = conn.LocalAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.ServeUDP(conn) }()
	go func() { defer wg.Done(); _ = p.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = srv.Close()
		_ = conn.Close()
		_ = ua.Close()
		wg.Wait()
	})
	return p
}

// waitChange returns the next OnChange call for account.
func (p *testPBX) waitChange(t *testing.T, account string, timeout time.Duration) change {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case c := <-p.changes:
			if c.account == account {
				return c
			}
		case <-deadline:
			t.Fatalf("no OnChange for %s within %v", account, timeout)
		}
	}
}

// testPhone is a hand-driven SIP phone: it keeps one Call-ID and a rising
// CSeq like a real phone, and computes digests itself so tests control nc.
type testPhone struct {
	t        *testing.T
	client   *sipgo.Client
	pbx      string
	user     string
	domain   string
	password string
	callID   string
	cseq     uint32
	local    string // the phone's own UDP address, as the PBX sees it
}

func newPhone(t *testing.T, pbx *testPBX, user, password string) *testPhone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(testDomain))
	if err != nil {
		t.Fatal(err)
	}
	// A fixed local address, so the PBX sees one source for this phone.
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	conn.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(testLogger()), sipgo.WithClientConnectionAddr(local))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); ua.Close() })
	return &testPhone{t: t, client: client, pbx: pbx.addr, user: user, domain: testDomain,
		password: password, callID: fmt.Sprintf("%s-%d@test", user, time.Now().UnixNano()), cseq: 100, local: local}
}

// request builds a request from the phone. contacts are Contact header
// values; expires < 0 leaves out the Expires header.
func (p *testPhone) request(method sip.RequestMethod, contacts []string, expires int) *sip.Request {
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: p.domain}
	target := sip.Uri{Scheme: "sip", Host: p.domain}
	to := &sip.ToHeader{Address: aor}
	if method != sip.REGISTER {
		target = sip.Uri{Scheme: "sip", User: "*70", Host: p.domain}
		to = &sip.ToHeader{Address: target}
	}
	req := sip.NewRequest(method, target)
	req.SetDestination(p.pbx)
	from := &sip.FromHeader{Address: aor}
	from.Params.Add("tag", "t"+p.user)
	req.AppendHeader(from)
	req.AppendHeader(to)
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(&callID)
	p.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: method})
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	if expires >= 0 {
		e := sip.ExpiresHeader(uint32(expires))
		req.AppendHeader(&e)
	}
	if method == sip.SUBSCRIBE {
		req.AppendHeader(sip.NewHeader("Event", "dialog"))
	}
	return req
}

func (p *testPhone) send(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// resend sends req again as a new transaction with the next CSeq,
// replacing its credentials with auth when auth is not empty.
func (p *testPhone) resend(req *sip.Request, auth string) *sip.Response {
	p.t.Helper()
	req = req.Clone()
	req.RemoveHeader("Via")
	p.cseq++
	req.CSeq().SeqNo = p.cseq
	if auth != "" {
		req.RemoveHeader("Authorization")
		req.AppendHeader(sip.NewHeader("Authorization", auth))
	}
	return p.send(req)
}

// authorize answers a 401 for req with the phone's password, qop=auth, nc.
func (p *testPhone) authorize(req *sip.Request, res *sip.Response, nc uint32) string {
	p.t.Helper()
	chal := challengeOf(p.t, res)
	return digestAnswer(p.user, chal["realm"], p.password, req.Method.String(), req.Recipient.Addr(), chal["nonce"], nc, "abcdef")
}

// register runs REGISTER → 401 → REGISTER with credentials and returns the
// final response.
func (p *testPhone) register(contacts []string, expires int) *sip.Response {
	p.t.Helper()
	req := p.request(sip.REGISTER, contacts, expires)
	res := p.send(req)
	if res.StatusCode != sip.StatusUnauthorized {
		return res
	}
	return p.resend(req, p.authorize(req, res, 1))
}

// challengeOf returns the params of a 401's WWW-Authenticate header.
func challengeOf(t testing.TB, res *sip.Response) map[string]string {
	t.Helper()
	if res.StatusCode != sip.StatusUnauthorized {
		t.Fatalf("want 401, got %d %s", res.StatusCode, res.Reason)
	}
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		t.Fatal("401 without WWW-Authenticate")
	}
	a, err := parseAuthorization(h.Value())
	if err != nil || a.scheme != "Digest" {
		t.Fatalf("bad challenge %q: %v", h.Value(), err)
	}
	return a.params
}

// digestAnswer computes an RFC 2617 Authorization value (qop=auth when nc > 0,
// RFC 2069 style when nc == 0), independently of the package's code.
func digestAnswer(user, realm, password, method, uri, nonce string, nc uint32, cnonce string) string {
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + realm + ":" + password)
	ha2 := h(method + ":" + uri)
	if nc == 0 {
		return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5`,
			user, realm, nonce, uri, h(ha1+":"+nonce+":"+ha2))
	}
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(strings.Join([]string{ha1, nonce, ncs, cnonce, "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, cnonce="%s", qop=auth, nc=%s`,
		user, realm, nonce, uri, resp, cnonce, ncs)
}

// contactsOf returns the Contact headers of a response as "uri expires".
func contactsOf(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			out = append(out, "?"+h.Value())
			continue
		}
		e, _ := c.Params.Get("expires")
		out = append(out, c.Address.String()+" "+e)
	}
	return out
}

// fakeTx is an in-process sip.ServerTransaction that records responses.
type fakeTx struct {
	mu  sync.Mutex
	res []*sip.Response
}

func (f *fakeTx) Respond(res *sip.Response) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.res = append(f.res, res)
	return nil
}
func (f *fakeTx) Acks() <-chan *sip.Request          { return nil }
func (f *fakeTx) OnCancel(sip.FnTxCancel) bool       { return false }
func (f *fakeTx) Terminate()                         {}
func (f *fakeTx) OnTerminate(sip.FnTxTerminate) bool { return false }
func (f *fakeTx) Done() <-chan struct{}              { return nil }
func (f *fakeTx) Err() error                         { return nil }
func (f *fakeTx) last() *sip.Response {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.res) == 0 {
		return nil
	}
	return f.res[len(f.res)-1]
}

// inproc builds a REGISTER (or other request) for in-process tests, with
// the source address set as the transport layer would.
func inproc(method sip.RequestMethod, user string, headers ...sip.Header) *sip.Request {
	aor := sip.Uri{Scheme: "sip", User: user, Host: testDomain}
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", Host: testDomain})
	from := &sip.FromHeader{Address: aor}
	from.Params.Add("tag", "x")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	callID := sip.CallIDHeader("inproc-" + user)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "192.0.2.10", Port: 5060}
	via.Params.Add("branch", sip.GenerateBranch())
	req.AppendHeader(via)
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetSource("192.0.2.10:40000")
	req.SetTransport("UDP")
	return req
}

func TestMain(m *testing.M) {
	// sipgo's transport and transaction layers log through this global.
	sip.SetDefaultLogger(testLogger())
	os.Exit(m.Run())
}
