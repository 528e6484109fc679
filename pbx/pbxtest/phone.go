package pbxtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Phone is a SIP phone registered to the PBX.
type Phone struct {
	Ext, Domain, Password, Customer string
	Port                            int
	// Codecs the phone offers and accepts; nil means PCMU, PCMA and
	// telephone-event. Set it with PhoneWithCodecs.
	Codecs []media.Codec
	// Display is the From display name of the calls the phone makes, such
	// as an override identity; "" sends none.
	Display string
	// Host is the loopback address the phone binds (default 127.0.0.1).
	Host string
	// TLS makes the phone talk SIP over TLS to the PBX's TLS listener and
	// offer SRTP (PhoneTLS); it trusts the PBX's test certificate only.
	TLS *tls.Config
	// SRTP makes a UDP phone offer SRTP (SDES) too; TLS phones always do.
	SRTP bool

	pbxAddr  string
	unplug   func()
	dg       *diago.Diago
	incoming chan *Call
	ctx      context.Context

	mu      sync.Mutex
	updates []*sip.Request // in-dialog UPDATEs received
}

// Phone starts a phone for customer's account ext and registers it.
func (p *PBX) Phone(t testing.TB, customer, ext string) *Phone {
	t.Helper()
	ph := p.NewPhone(t, customer, ext)
	if err := ph.Register(context.Background(), ph.Password, time.Hour); err != nil {
		t.Fatalf("register %s@%s: %v", ext, ph.Domain, err)
	}
	return ph
}

// PhoneWithCodecs starts and registers a phone that only speaks codecs.
func (p *PBX) PhoneWithCodecs(t testing.TB, customer, ext string, codecs ...media.Codec) *Phone {
	t.Helper()
	ph := p.newPhone(t, customer, ext, codecs)
	if err := ph.Register(context.Background(), ph.Password, time.Hour); err != nil {
		t.Fatalf("register %s@%s: %v", ext, ph.Domain, err)
	}
	return ph
}

func (ph *Phone) codecs() []media.Codec {
	if ph.Codecs != nil {
		return ph.Codecs
	}
	return []media.Codec{media.CodecAudioUlaw, media.CodecAudioAlaw, media.CodecTelephoneEvent8000}
}

// PhoneTLS starts a phone that registers and calls over TLS and offers
// SRTP (the PBX must run WithTLS).
func (p *PBX) PhoneTLS(t testing.TB, customer, ext string) *Phone {
	t.Helper()
	if p.TLSAddr == "" {
		t.Fatal("PhoneTLS: the PBX has no TLS listener (WithTLS)")
	}
	cust := p.Store().Current().Customer(customer)
	if cust == nil {
		t.Fatalf("no customer %q", customer)
	}
	ph := &Phone{Ext: ext, Domain: cust.Domain, Customer: customer, pbxAddr: p.TLSAddr, incoming: make(chan *Call, 64),
		TLS: p.clientTLS(t)}
	if a := cust.Account(ext); a != nil {
		ph.Password = a.Password
	}
	ph.start(t)
	if err := ph.Register(t.Context(), ph.Password, time.Hour); err != nil {
		t.Fatalf("%s@%s registers over TLS: %v", ext, customer, err)
	}
	return ph
}

// NewPhone starts a phone without registering it.
func (p *PBX) NewPhone(t testing.TB, customer, ext string) *Phone {
	t.Helper()
	return p.newPhone(t, customer, ext, nil)
}

// PhoneOn is Phone bound to another loopback address (127.0.0.0/8), so
// that it is a different host as far as the PBX can tell.
func (p *PBX) PhoneOn(t testing.TB, host, customer, ext string) *Phone {
	t.Helper()
	ph := p.newPhoneOn(t, host, customer, ext, nil)
	if err := ph.Register(t.Context(), ph.Password, time.Hour); err != nil {
		t.Fatalf("%s@%s registers from %s: %v", ext, customer, host, err)
	}
	return ph
}

func (p *PBX) newPhone(t testing.TB, customer, ext string, codecs []media.Codec) *Phone {
	t.Helper()
	return p.newPhoneOn(t, "", customer, ext, codecs)
}

// PhoneWith starts a phone changed by setup before it starts (such as
// SRTP over UDP), and registers it.
func (p *PBX) PhoneWith(t testing.TB, customer, ext string, setup func(*Phone)) *Phone {
	t.Helper()
	ph := p.newPhoneSetup(t, "", customer, ext, nil, setup)
	if err := ph.Register(t.Context(), ph.Password, time.Hour); err != nil {
		t.Fatalf("register %s@%s: %v", ext, ph.Domain, err)
	}
	return ph
}

func (p *PBX) newPhoneOn(t testing.TB, host, customer, ext string, codecs []media.Codec) *Phone {
	t.Helper()
	return p.newPhoneSetup(t, host, customer, ext, codecs, nil)
}

func (p *PBX) newPhoneSetup(t testing.TB, host, customer, ext string, codecs []media.Codec, setup func(*Phone)) *Phone {
	t.Helper()
	cust := p.Store().Current().Customer(customer)
	if cust == nil {
		t.Fatalf("no customer %q", customer)
	}
	ph := &Phone{Ext: ext, Domain: cust.Domain, Customer: customer, Codecs: codecs, Host: host, pbxAddr: p.Addr, incoming: make(chan *Call, 64)}
	if a := cust.Account(ext); a != nil {
		ph.Password = a.Password
	}
	if setup != nil {
		setup(ph)
	}
	ph.start(t)
	if t == p.t {
		// Cleanups run last first: a stop registered after the phone's
		// start runs before its unplug, so the PBX's goodbye BYEs reach a
		// phone that answers them (an unplugged one left each waiting out
		// its 5 s, in most tests' teardown). The PBX's own stop, registered
		// first, is then a no-op.
		t.Cleanup(func() { p.stop(t) })
	}
	return ph
}

// NewRawPhone starts a SIP user agent that is not an account (a trunk, an
// intruder) on a free port.
func NewRawPhone(t testing.TB, pbxAddr, user, domain string) *Phone {
	return NewRawPhoneAt(t, pbxAddr, user, domain, 0)
}

// NewRawPhoneAt is NewRawPhone on a given local port (a trunk's address).
func NewRawPhoneAt(t testing.TB, pbxAddr, user, domain string, port int) *Phone {
	ph := &Phone{Ext: user, Domain: domain, Port: port, pbxAddr: pbxAddr, incoming: make(chan *Call, 64)}
	ph.start(t)
	return ph
}

func (ph *Phone) start(t testing.TB) {
	if ph.Port == 0 {
		ph.Port = FreePort(t)
	}
	if ph.Host == "" {
		ph.Host = "127.0.0.1"
	}
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent("pbxtest-" + ph.Ext), sipgo.WithUserAgentHostname(ph.Host)}
	tr := diago.Transport{Transport: "udp", BindHost: ph.Host, BindPort: ph.Port}
	if ph.SRTP {
		tr.MediaSRTP = 1
	}
	if ph.TLS != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(ph.TLS))
		// The phone's own listener serves the same test certificate.
		tr = diago.Transport{Transport: "tls", BindHost: ph.Host, BindPort: ph.Port, TLSConf: ph.TLS, MediaSRTP: 1}
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	ph.dg = diago.NewDiago(ua,
		diago.WithServer(srv),
		diago.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		diago.WithTransport(tr),
		diago.WithMediaConfig(diago.MediaConfig{Codecs: ph.codecs()}))
	// After diago's own handlers: in-dialog UPDATEs (connected identity) are recorded and accepted.
	srv.OnUpdate(func(req *sip.Request, tx sip.ServerTransaction) {
		ph.mu.Lock()
		ph.updates = append(ph.updates, req)
		ph.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	ctx, cancel := context.WithCancel(context.Background())
	ph.ctx = ctx
	var once sync.Once
	ph.unplug = func() {
		once.Do(func() {
			cancel()
			ua.Close()
		})
	}
	t.Cleanup(ph.unplug)
	err = ph.dg.ServeBackground(ctx, func(d *diago.DialogServerSession) {
		c := &Call{phone: ph, srv: d, ended: make(chan struct{}), invite: d.InviteRequest}
		select {
		case ph.incoming <- c:
		default:
			_ = d.Respond(sip.StatusBusyHere, "Busy Here", nil)
			return
		}
		select {
		case <-d.Context().Done():
		case <-c.ended:
		case <-ctx.Done():
		}
		c.markEnded()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Unplug takes the phone off the network without unregistering, as when
// its cable is pulled: whatever is sent to it from now on goes unanswered.
func (ph *Phone) Unplug() { ph.unplug() }

func (ph *Phone) transport() string {
	if ph.TLS != nil {
		return "tls"
	}
	return "udp"
}

func (ph *Phone) uriParams() sip.HeaderParams {
	if ph.TLS == nil {
		return nil
	}
	params := sip.NewParams()
	params.Add("transport", "tls")
	return params
}

// Register sends REGISTER with the given password and expiry.
func (ph *Phone) Register(ctx context.Context, password string, expiry time.Duration) error {
	var err error
	for range 5 {
		err = ph.register(ctx, password, expiry)
		// sipgo's client sometimes misses the listener that ServeBackground
		// just opened and tries to bind the port again: retry that.
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func (ph *Phone) register(ctx context.Context, password string, expiry time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tx, err := ph.dg.RegisterTransaction(ctx, sip.Uri{User: ph.Ext, Host: ph.Domain, UriParams: ph.uriParams()}, diago.RegisterOptions{
		Username: ph.Ext, Password: password, ProxyHost: ph.pbxAddr, Expiry: expiry,
	})
	if err != nil {
		return err
	}
	return tx.Register(ctx)
}

// Dial calls number at the PBX and waits for the answer.
func (ph *Phone) Dial(t testing.TB, number string) *Call {
	t.Helper()
	c, err := ph.DialErr(context.Background(), number)
	if err != nil {
		t.Fatalf("%s dials %s: %v", ph.Ext, number, err)
	}
	return c
}

// DialErr calls number and returns the SIP failure, if any, as
// *sipgo.ErrDialogResponse.
func (ph *Phone) DialErr(ctx context.Context, number string) (*Call, error) {
	return ph.DialWith(ctx, number, nil)
}

// DialWith is DialErr with a callback per response (to see 180, 183).
func (ph *Phone) DialWith(ctx context.Context, number string, onResponse func(*sip.Response)) (*Call, error) {
	d, err := ph.dg.NewDialog(sip.Uri{User: number, Host: ph.Domain}, diago.NewDialogOptions{Transport: ph.transport()})
	if err != nil {
		return nil, err
	}
	d.InviteRequest.SetDestination(ph.pbxAddr)
	opts := diago.InviteClientOptions{Username: ph.Ext, Password: ph.Password,
		// Like a desk phone: UPDATE (connected identity) is welcome.
		Headers: []sip.Header{sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, UPDATE")}}
	if onResponse != nil {
		opts.OnResponse = func(res *sip.Response) error { onResponse(res); return nil }
	}
	opts.WithCaller(ph.Display, ph.Ext, ph.Domain)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	med, err := d.Invite(ctx, opts)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	if err := d.Ack(ctx); err != nil {
		return nil, err
	}
	c := &Call{phone: ph, cli: d, ended: make(chan struct{}), invite: d.InviteRequest}
	c.started(med)
	go func() {
		select {
		case <-d.Context().Done():
		case <-ph.ctx.Done():
		}
		c.markEnded()
	}()
	return c, nil
}

// AnswerLater answers the phone's next call in the background (within
// 20 s) and delivers it, or nil if none came: for a call placed by
// something else than a diago phone (a softphone, sipp).
func (ph *Phone) AnswerLater(ctx context.Context) <-chan *Call {
	answered := make(chan *Call, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		c, _ := ph.AnswerErr(ctx)
		answered <- c
	}()
	return answered
}

// Ringing waits for an incoming call without answering it.
func (ph *Phone) Ringing(t testing.TB, within time.Duration) *Call {
	t.Helper()
	select {
	case c := <-ph.incoming:
		_ = c.srv.Ringing()
		return c
	case <-time.After(within):
		t.Fatalf("%s: no incoming call within %s", ph.Ext, within)
		return nil
	}
}

// Answer waits for an incoming call and answers it.
func (ph *Phone) Answer(t testing.TB, within time.Duration) *Call {
	t.Helper()
	c := ph.Ringing(t, within)
	c.Answer(t)
	return c
}

// AnswerErr is Answer for any goroutine: it waits for an incoming call
// until ctx ends and answers it.
func (ph *Phone) AnswerErr(ctx context.Context) (*Call, error) {
	select {
	case c := <-ph.incoming:
		_ = c.srv.Ringing()
		return c, c.AnswerErr()
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no incoming call: %w", ph.Ext, ctx.Err())
	}
}

// NoCall asserts that no call rings within d.
func (ph *Phone) NoCall(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case c := <-ph.incoming:
		t.Fatalf("%s: unexpected call from %s", ph.Ext, c.invite.From().Value())
	case <-time.After(d):
	}
}
