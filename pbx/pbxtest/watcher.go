package pbxtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/presence"
)

// Watcher is a phone's BLF side: a plain sipgo user agent on a free UDP
// port that subscribes to the dialog event package of entities (slot keys
// such as 711) without registering, authenticating with the account's
// digest credentials like a real phone, answers the NOTIFYs and keeps the
// lamp they describe.
type Watcher struct {
	Ext, Domain, Password, Customer string
	Port                            int

	pbxAddr string
	cli     *sipgo.Client

	mu      sync.Mutex
	subs    map[string]*Subscription // by Call-ID
	lamps   map[string]Lamp          // by entity: the latest NOTIFY of any subscription
	answer  int                      // status for NOTIFYs; 0 is 200, -1 no answer
	changed chan struct{}            // closed and replaced on every NOTIFY
}

// Lamp is what one NOTIFY says about an entity.
type Lamp struct {
	Entity string
	// State is the dialog's state ("confirmed": busy, "terminated": free),
	// "" when the document holds no dialog (free as well).
	State string
	// Display and Identity are the remote party of a busy dialog.
	Display, Identity string
	Version           uint32
	// SubState is the Subscription-State header ("active;expires=3599",
	// "terminated;reason=timeout").
	SubState string
	CallID   string
	At       time.Time
}

// Busy reports whether the lamp is lit.
func (l Lamp) Busy() bool { return l.State == "confirmed" }

// Subscription is one dialog-event subscription of a Watcher.
type Subscription struct {
	w       *Watcher
	Entity  string
	CallID  string
	fromTag string
	toTag   string
	target  sip.Uri // the PBX's Contact
	cseq    uint32

	// guarded by w.mu
	notifies []Lamp
}

// Watcher starts a BLF watcher for customer's account ext.
func (p *PBX) Watcher(t testing.TB, customer, ext string) *Watcher {
	t.Helper()
	cust := p.Store().Current().Customer(customer)
	if cust == nil {
		t.Fatalf("no customer %q", customer)
	}
	w := &Watcher{Ext: ext, Domain: cust.Domain, Customer: customer, pbxAddr: p.Addr,
		subs: map[string]*Subscription{}, lamps: map[string]Lamp{}, changed: make(chan struct{})}
	if a := cust.Account(ext); a != nil {
		w.Password = a.Password
	}
	w.start(t)
	return w
}

func (w *Watcher) start(t testing.TB) {
	t.Helper()
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.Port = l.LocalAddr().(*net.UDPAddr).Port
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("pbxtest-blf-"+w.Ext), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnNotify(w.onNotify)
	w.cli, err = sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"),
		sipgo.WithClientConnectionAddr(l.LocalAddr().String()),
		sipgo.WithClientLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeUDP(l)
	// ServeUDP adds the socket to the transport's pool from its goroutine;
	// requests sent before that would bind a second socket.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, err := ua.TransportLayer().GetConnection("udp", l.LocalAddr().String()); err == nil && c != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("watcher: UDP listener not ready")
		}
	}
	t.Cleanup(func() {
		ua.Close()
		l.Close()
	})
}

// AnswerNotifies makes the watcher answer NOTIFYs with code (0: 200 OK,
// -1: no answer at all, like a phone that was unplugged).
func (w *Watcher) AnswerNotifies(code int) {
	w.mu.Lock()
	w.answer = code
	w.mu.Unlock()
}

func (w *Watcher) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	w.mu.Lock()
	answer := w.answer
	w.mu.Unlock()
	if answer < 0 {
		return
	}
	cid := req.CallID().Value()
	w.mu.Lock()
	sub := w.subs[cid]
	w.mu.Unlock()
	ev := req.GetHeader("Event")
	ct := req.GetHeader("Content-Type")
	doc, err := presence.ParseDocument(req.Body())
	if sub == nil || ev == nil || !strings.HasPrefix(ev.Value(), "dialog") || ct == nil || ct.Value() != "application/dialog-info+xml" ||
		err != nil || doc.State != "full" || len(doc.Dialogs) > 1 {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Unknown Subscription", nil))
		return
	}
	if answer == 0 {
		answer = sip.StatusOK
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, answer, "OK", nil))
	l := Lamp{Entity: sub.Entity, Version: doc.Version, CallID: cid, At: time.Now()}
	if h := req.GetHeader("Subscription-State"); h != nil {
		l.SubState = h.Value()
	}
	if len(doc.Dialogs) == 1 {
		d := doc.Dialogs[0]
		l.State = strings.TrimSpace(d.State)
		l.Display = d.Remote.Identity.Display
		l.Identity = strings.TrimSpace(d.Remote.Identity.URI)
	}
	w.mu.Lock()
	sub.notifies = append(sub.notifies, l)
	w.lamps[sub.Entity] = l
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// Lamp returns the latest state seen for entity.
func (w *Watcher) Lamp(entity string) (Lamp, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.lamps[entity]
	return l, ok
}

// WaitLamp waits until entity's lamp is busy (or not) and returns it.
func (w *Watcher) WaitLamp(t testing.TB, entity string, busy bool, within time.Duration) Lamp {
	t.Helper()
	l, err := w.waitFor(within, func() (Lamp, bool) {
		l, ok := w.lamps[entity]
		return l, ok && l.Busy() == busy
	})
	if err != nil {
		t.Fatalf("watcher %s: lamp %s busy=%v: %v (last %+v)", w.Ext, entity, busy, err, l)
	}
	return l
}

// waitFor waits until cond, run under w.mu, holds.
func (w *Watcher) waitFor(within time.Duration, cond func() (Lamp, bool)) (Lamp, error) {
	deadline := time.After(within)
	for {
		w.mu.Lock()
		l, ok := cond()
		ch := w.changed
		w.mu.Unlock()
		if ok {
			return l, nil
		}
		select {
		case <-ch:
		case <-deadline:
			return l, errors.New("timed out")
		}
	}
}

// Subscribe subscribes to entity for expires (the PBX's default when 0)
// and waits for the first NOTIFY.
func (w *Watcher) Subscribe(t testing.TB, entity string, expires time.Duration) *Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, res, err := w.SubscribeWith(ctx, entity, expires, w.Password)
	if err != nil {
		t.Fatalf("watcher %s: subscribe %s: %v", w.Ext, entity, err)
	}
	if res.StatusCode != sip.StatusOK && res.StatusCode != sip.StatusAccepted {
		t.Fatalf("watcher %s: subscribe %s: %d %s", w.Ext, entity, res.StatusCode, res.Reason)
	}
	sub.WaitNotifies(t, 1, 5*time.Second)
	return sub
}

// SubscribeWith sends a new SUBSCRIBE for entity and answers a digest
// challenge with password (none when empty). It returns the final
// response; the subscription is live only if that is 2xx.
func (w *Watcher) SubscribeWith(ctx context.Context, entity string, expires time.Duration, password string) (*Subscription, *sip.Response, error) {
	sub := &Subscription{w: w, Entity: entity, CallID: "blf-" + sip.GenerateTagN(12), fromTag: sip.GenerateTagN(10), cseq: 1}
	w.mu.Lock()
	w.subs[sub.CallID] = sub
	w.mu.Unlock()
	req := sub.request(sip.Uri{Scheme: "sip", User: entity, Host: w.Domain}, expires, expires == 0)
	res, err := sub.do(ctx, req, password)
	if err != nil {
		return nil, nil, err
	}
	if res.IsSuccess() {
		sub.toTag, _ = res.To().Params.Get("tag")
		if c := res.Contact(); c != nil {
			sub.target = *c.Address.Clone()
		} else {
			sub.target = req.Recipient
		}
	}
	return sub, res, nil
}

// request builds a SUBSCRIBE of sub to uri.
func (s *Subscription) request(uri sip.Uri, expires time.Duration, dflt bool) *sip.Request {
	w := s.w
	req := sip.NewRequest(sip.SUBSCRIBE, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: w.Ext, Host: w.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", s.fromTag)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: s.Entity, Host: w.Domain}, Params: sip.NewParams()}
	if s.toTag != "" {
		to.Params.Add("tag", s.toTag)
	}
	cid := sip.CallIDHeader(s.CallID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: w.Ext, Host: "127.0.0.1", Port: w.Port}})
	req.AppendHeader(sip.NewHeader("Event", "dialog"))
	req.AppendHeader(sip.NewHeader("Accept", "application/dialog-info+xml"))
	if !dflt {
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	}
	req.SetDestination(w.pbxAddr)
	return req
}

// do sends req, answering a 401 with the digest of password.
func (s *Subscription) do(ctx context.Context, req *sip.Request, password string) (*sip.Response, error) {
	res, err := s.w.cli.Do(ctx, req)
	if err == nil && res.StatusCode == sip.StatusUnauthorized && password != "" {
		res, err = s.w.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: s.w.Ext, Password: password})
	}
	s.cseq = req.CSeq().SeqNo + 1
	return res, err
}

// Refresh re-subscribes within the subscription (expires 0 unsubscribes)
// and returns the final status.
func (s *Subscription) Refresh(t testing.TB, expires time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.do(ctx, s.request(s.target, expires, false), s.w.Password)
	if err != nil {
		t.Fatalf("watcher %s: refresh %s: %v", s.w.Ext, s.Entity, err)
	}
	return res.StatusCode
}

// Notifies returns the NOTIFYs of this subscription so far.
func (s *Subscription) Notifies() []Lamp {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return append([]Lamp(nil), s.notifies...)
}

// WaitNotifies waits until the subscription got n NOTIFYs and returns them.
func (s *Subscription) WaitNotifies(t testing.TB, n int, within time.Duration) []Lamp {
	t.Helper()
	if _, err := s.w.waitFor(within, func() (Lamp, bool) { return Lamp{}, len(s.notifies) >= n }); err != nil {
		t.Fatalf("watcher %s: %s: %d NOTIFYs, want %d", s.w.Ext, s.Entity, len(s.Notifies()), n)
	}
	return s.Notifies()
}

// WaitVersion waits until a NOTIFY with at least version v arrived on the
// subscription; it reports whether one did within the time.
func (s *Subscription) WaitVersion(v uint32, within time.Duration) bool {
	_, err := s.w.waitFor(within, func() (Lamp, bool) {
		return Lamp{}, len(s.notifies) > 0 && s.notifies[len(s.notifies)-1].Version >= v
	})
	return err == nil
}

func (s *Subscription) String() string {
	return fmt.Sprintf("%s@%s watching %s (%s)", s.w.Ext, s.w.Domain, s.Entity, s.CallID)
}
