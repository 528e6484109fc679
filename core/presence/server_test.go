package presence

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakePhone stands for the subscribers: it records every NOTIFY and
// answers with answer(req) (nil: 200; a status < 0: no answer at all).
type fakePhone struct {
	mu       sync.Mutex
	notifies []*sip.Request
	answer   func(*sip.Request) int
	got      chan struct{}
}

func newFakePhone() *fakePhone { return &fakePhone{got: make(chan struct{}, 1)} }

func (f *fakePhone) send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	f.mu.Lock()
	f.notifies = append(f.notifies, req)
	answer := f.answer
	f.mu.Unlock()
	select {
	case f.got <- struct{}{}:
	default:
	}
	code := 200
	if answer != nil {
		code = answer(req)
	}
	if code < 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return sip.NewResponseFromRequest(req, code, "X", nil), nil
}

func (f *fakePhone) all() []*sip.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sip.Request(nil), f.notifies...)
}

// wait returns once n NOTIFYs were sent in all.
func (f *fakePhone) wait(t *testing.T, n int) []*sip.Request {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if all := f.all(); len(all) >= n {
			return all
		}
		select {
		case <-f.got:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d NOTIFYs sent, want %d", len(f.all()), n)
		}
	}
}

func newServer(t *testing.T, f *fakePhone, mod func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Send:          f.send,
		Contact:       sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5060},
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:    reg,
		MinExpires:    time.Second,
		NotifyTimeout: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, reg
}

// subscribe builds a SUBSCRIBE for 711@demo from phone tag; toTag ""
// makes an initial one. extra are more header lines.
func subscribeReq(t testing.TB, callID, fromTag, toTag string, cseq int, extra ...string) *sip.Request {
	t.Helper()
	to := "<sip:711@demo.callpark.test>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	msg := "SUBSCRIBE sip:711@demo.callpark.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + fmt.Sprint(cseq) + callID + "\r\n" +
		"From: \"Desk\" <sip:201@demo.callpark.test>;tag=" + fromTag + "\r\n" +
		"To: " + to + "\r\n" +
		"Call-ID: " + callID + "\r\n" +
		fmt.Sprintf("CSeq: %d SUBSCRIBE\r\n", cseq) +
		"Contact: <sip:201@127.0.0.1:5070>\r\n" +
		"Max-Forwards: 70\r\n"
	for _, h := range extra {
		msg += h + "\r\n"
	}
	msg += "Content-Length: 0\r\n\r\n"
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	req.SetSource("127.0.0.1:5070")
	return req
}

var demo711 = Entity{Customer: "demo", User: "711", Domain: "demo.callpark.test"}

// do runs Subscribe and returns the response.
func do(s *Server, req *sip.Request, e Entity) *sip.Response {
	var res *sip.Response
	s.Subscribe(req, func(r *sip.Response) error { res = r; return nil }, e)
	return res
}

func parseNotify(t *testing.T, n *sip.Request) (Document, string) {
	t.Helper()
	di, err := ParseDocument(n.Body())
	if err != nil {
		t.Fatalf("NOTIFY body: %v\n%s", err, n.Body())
	}
	return di, di.Lamp()
}

func header(r interface{ GetHeader(string) sip.Header }, name string) string {
	if h := r.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func TestSubscribeNotifyLifecycle(t *testing.T) {
	f := newFakePhone()
	s, reg := newServer(t, f, nil)

	// Unknown entity: 200, then a NOTIFY without any dialog.
	res := do(s, subscribeReq(t, "c1", "ft1", "", 1, "Event: dialog", "Accept: application/dialog-info+xml", "Expires: 600"), demo711)
	if res.StatusCode != 200 || header(res, "Expires") != "600" || header(res, "Contact") == "" {
		t.Fatalf("response: %s", res)
	}
	toTag, _ := res.To().Params.Get("tag")
	if toTag == "" {
		t.Fatal("200 without To tag")
	}
	n := f.wait(t, 1)[0]
	di, lamp := parseNotify(t, n)
	if lamp != "none" || di.Version != 0 || di.State != "full" || di.Entity != "sip:711@demo.callpark.test" {
		t.Fatalf("initial NOTIFY: lamp %s %+v", lamp, di)
	}
	if got := header(n, "Subscription-State"); !strings.HasPrefix(got, "active;expires=") {
		t.Fatalf("Subscription-State %q", got)
	}
	if ft, _ := n.From().Params.Get("tag"); ft != toTag {
		t.Fatalf("NOTIFY From tag %q, want our tag %q", ft, toTag)
	}
	if tt, _ := n.To().Params.Get("tag"); tt != "ft1" || n.CallID().Value() != "c1" || header(n, "Event") != "dialog" {
		t.Fatalf("NOTIFY dialog identifiers: %s", n)
	}
	if n.Recipient.String() != "sip:201@127.0.0.1:5070" || n.Destination() != "127.0.0.1:5070" {
		t.Fatalf("NOTIFY to %s via %s", n.Recipient.String(), n.Destination())
	}

	// Busy, then free: versions 1, 2 and CSeq rising.
	if got := s.Set("demo", "711", State{Busy: true, Display: "Alice & Bob", User: "200"}); got != 1 {
		t.Fatalf("Set notified %d", got)
	}
	n = f.wait(t, 2)[1]
	di, lamp = parseNotify(t, n)
	if lamp != "confirmed" || di.Version != 1 || di.Dialogs[0].ID != "park-711" || di.Dialogs[0].Direction != "recipient" ||
		di.Dialogs[0].Remote.Identity.Display != "Alice & Bob" || di.Dialogs[0].Remote.Identity.URI != "sip:200@demo.callpark.test" {
		t.Fatalf("busy NOTIFY: %+v", di)
	}
	if s.Set("demo", "711", State{Busy: true, Display: "Alice & Bob", User: "200"}) != 0 {
		t.Fatal("an unchanged state notified again")
	}
	s.Set("demo", "711", State{})
	all := f.wait(t, 3)
	if di, lamp = parseNotify(t, all[2]); lamp != "terminated" || di.Version != 2 {
		t.Fatalf("free NOTIFY: %s %+v", lamp, di)
	}
	if all[2].CSeq().SeqNo != all[1].CSeq().SeqNo+1 {
		t.Fatalf("CSeq %d after %d", all[2].CSeq().SeqNo, all[1].CSeq().SeqNo)
	}

	// Refresh: 200 with the new interval and a NOTIFY (version 3).
	res = do(s, subscribeReq(t, "c1", "ft1", toTag, 2, "Event: dialog", "Expires: 1200"), demo711)
	if res.StatusCode != 200 || header(res, "Expires") != "1200" {
		t.Fatalf("refresh: %s", res)
	}
	all = f.wait(t, 4)
	if di, _ = parseNotify(t, all[3]); di.Version != 3 {
		t.Fatalf("refresh NOTIFY version %d", di.Version)
	}
	if got := header(all[3], "Subscription-State"); got != "active;expires=1199" && got != "active;expires=1200" {
		t.Fatalf("refresh Subscription-State %q", got)
	}
	if value(s.metrics.subscriptions) != 1 {
		t.Fatal("gauge")
	}

	// Unsubscribe: 200 Expires 0, a final NOTIFY, and nothing after it.
	res = do(s, subscribeReq(t, "c1", "ft1", toTag, 3, "Event: dialog", "Expires: 0"), demo711)
	if res.StatusCode != 200 || header(res, "Expires") != "0" {
		t.Fatalf("unsubscribe: %s", res)
	}
	all = f.wait(t, 5)
	if got := header(all[4], "Subscription-State"); got != "terminated;reason=timeout" {
		t.Fatalf("final NOTIFY Subscription-State %q", got)
	}
	if di, lamp = parseNotify(t, all[4]); di.Version != 4 || lamp != "terminated" {
		t.Fatalf("final NOTIFY %s %+v", lamp, di)
	}
	s.Set("demo", "711", State{Busy: true})
	time.Sleep(50 * time.Millisecond)
	if len(f.all()) != 5 || s.Count() != 0 {
		t.Fatalf("NOTIFYs after unsubscribe: %d, subscriptions %d", len(f.all()), s.Count())
	}
	// A refresh of the ended subscription is refused.
	if res = do(s, subscribeReq(t, "c1", "ft1", toTag, 4, "Event: dialog"), demo711); res.StatusCode != 481 {
		t.Fatalf("refresh after unsubscribe: %d", res.StatusCode)
	}
	if got := value(s.metrics.notifies); got != 5 {
		t.Fatalf("notifies_total %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) < 3 {
		t.Fatalf("metrics not registered: %d families, %v", len(mfs), err)
	}
}

func TestSubscribeRefusals(t *testing.T) {
	f := newFakePhone()
	s, _ := newServer(t, f, nil)
	for _, tc := range []struct {
		name  string
		hdrs  []string
		code  int
		extra string
	}{
		{"no event", nil, 489, "Allow-Events"},
		{"presence", []string{"Event: presence"}, 489, "Allow-Events"},
		{"accept pidf only", []string{"Event: dialog", "Accept: application/pidf+xml"}, 406, "Accept"},
		{"fetch", []string{"Event: dialog", "Expires: 0"}, 200, ""},
		{"malformed expires", []string{"Event: dialog", "Expires: soon"}, 400, ""},
	} {
		res := do(s, subscribeReq(t, "r-"+tc.name, "ft", "", 1, tc.hdrs...), demo711)
		if res.StatusCode != tc.code || (tc.extra != "" && header(res, tc.extra) == "") {
			t.Errorf("%s: %s", tc.name, res.StartLine())
		}
	}
	s2, _ := newServer(t, f, func(c *Config) { c.MinExpires = 60 * time.Second })
	res := do(s2, subscribeReq(t, "brief", "ft", "", 1, "Event: dialog", "Expires: 30"), demo711)
	if res.StatusCode != 423 || header(res, "Min-Expires") != "60" {
		t.Fatalf("too brief: %s", res)
	}
	// Above the maximum: granted the maximum.
	res = do(s2, subscribeReq(t, "long", "ft", "", 1, "Event: dialog", "Expires: 99999999999999999999"), demo711)
	if res.StatusCode != 200 || header(res, "Expires") != "7200" {
		t.Fatalf("long: %s", res)
	}
	// No Expires: the default.
	res = do(s2, subscribeReq(t, "default", "ft", "", 1, "Event: dialog"), demo711)
	if res.StatusCode != 200 || header(res, "Expires") != "3600" {
		t.Fatalf("default: %s", res)
	}
	// A refresh for another customer's subscription, or an unknown tag.
	toTag, _ := res.To().Params.Get("tag")
	other := demo711
	other.Customer = "acme"
	if res = do(s2, subscribeReq(t, "default", "ft", toTag, 2, "Event: dialog"), other); res.StatusCode != 481 {
		t.Fatalf("cross-customer refresh: %d", res.StatusCode)
	}
	if res = do(s2, subscribeReq(t, "default", "ft", "nope", 2, "Event: dialog"), demo711); res.StatusCode != 481 {
		t.Fatalf("unknown tag refresh: %d", res.StatusCode)
	}
	// The fetch (Expires: 0 on a new subscription) got one terminated NOTIFY.
	var fetched bool
	for end := time.Now().Add(2 * time.Second); !fetched && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for _, n := range f.all() {
			if n.CallID().Value() == "r-fetch" {
				fetched = header(n, "Subscription-State") == "terminated;reason=timeout"
			}
		}
	}
	if !fetched {
		t.Fatal("fetch without its terminated NOTIFY")
	}
}

// TestSubscriptionExpires runs on synctest's fake clock: the expiry comes
// exactly when due, and a refresh moves it, with no real waiting.
func TestSubscriptionExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePhone()
		s, _ := newServer(t, f, nil)
		s.Set("demo", "711", State{Busy: true, User: "200"})
		res := do(s, subscribeReq(t, "e1", "ft", "", 1, "Event: dialog", "Expires: 1"), demo711)
		if res.StatusCode != 200 || header(res, "Expires") != "1" {
			t.Fatalf("%s", res)
		}
		start := time.Now()
		synctest.Wait()
		if n := len(f.all()); n != 1 {
			t.Fatalf("%d NOTIFYs before the expiry, want the initial one", n)
		}
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if n := len(f.all()); n != 1 || s.Count() != 1 {
			t.Fatalf("expired early: %d NOTIFYs, %d subscriptions", n, s.Count())
		}
		all := f.wait(t, 2)
		if took := time.Since(start); took != time.Second {
			t.Fatalf("expired after %s, want exactly 1s", took)
		}
		if got := header(all[1], "Subscription-State"); got != "terminated;reason=timeout" {
			t.Fatalf("expiry NOTIFY Subscription-State %q", got)
		}
		if di, lamp := parseNotify(t, all[1]); lamp != "confirmed" || di.Version != 1 {
			t.Fatalf("expiry NOTIFY %s %+v", lamp, di)
		}
		if s.Count() != 0 || value(s.metrics.expired) != 1 {
			t.Fatal("expired subscription still counted")
		}

		// A refresh before expiry keeps it alive until the new expiry.
		res = do(s, subscribeReq(t, "e2", "ft", "", 1, "Event: dialog", "Expires: 1"), demo711)
		toTag, _ := res.To().Params.Get("tag")
		time.Sleep(600 * time.Millisecond)
		do(s, subscribeReq(t, "e2", "ft", toTag, 2, "Event: dialog", "Expires: 3"), demo711)
		time.Sleep(3*time.Second - time.Nanosecond)
		synctest.Wait()
		if s.Count() != 1 {
			t.Fatal("refreshed subscription expired before its new expiry")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if s.Count() != 0 {
			t.Fatal("refreshed subscription outlived its new expiry")
		}
	})
}

func TestDeadSubscriberDropped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		reason string
	}{{"481", 481, "481"}, {"no answer", -1, "timeout"}, {"rejected", 500, "rejected"}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePhone()
			s, _ := newServer(t, f, nil)
			do(s, subscribeReq(t, "d1", "ft", "", 1, "Event: dialog"), demo711)
			do(s, subscribeReq(t, "d2", "ft", "", 1, "Event: dialog"), demo711)
			f.wait(t, 2)
			f.mu.Lock()
			f.answer = func(r *sip.Request) int {
				if r.CallID().Value() == "d1" {
					return tc.code
				}
				return 200
			}
			f.mu.Unlock()
			s.Set("demo", "711", State{Busy: true})
			f.wait(t, 4)
			deadline := time.Now().Add(2 * time.Second)
			for s.Count() != 1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if s.Count() != 1 {
				t.Fatalf("%d subscriptions, want the live one only", s.Count())
			}
			if got := value(s.metrics.failures.WithLabelValues(tc.reason)); got != 1 {
				t.Fatalf("failures{%s} = %v", tc.reason, got)
			}
			// The dropped phone gets nothing more; the other one does.
			s.Set("demo", "711", State{})
			f.wait(t, 5)
			time.Sleep(50 * time.Millisecond)
			for _, n := range f.all()[4:] {
				if n.CallID().Value() == "d1" {
					t.Fatal("NOTIFY to a dropped subscriber")
				}
			}
		})
	}
}

// TestVersionsInOrder: changes faster than the subscriber answers are
// folded, and every subscription sees versions 0, 1, 2... without gaps,
// ending with the last state.
func TestVersionsInOrder(t *testing.T) {
	f := newFakePhone()
	f.answer = func(*sip.Request) int { time.Sleep(2 * time.Millisecond); return 200 }
	s, _ := newServer(t, f, nil)
	for i := range 5 {
		do(s, subscribeReq(t, fmt.Sprint("v", i), "ft", "", 1, "Event: dialog"), demo711)
	}
	for i := range 200 {
		s.Set("demo", "711", State{Busy: i%2 == 0, User: fmt.Sprint(i)})
	}
	s.Set("demo", "711", State{Busy: true, User: "last"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		last := map[string]string{}
		next := map[string]uint32{}
		for _, n := range f.all() {
			di, _ := parseNotify(t, n)
			id := n.CallID().Value()
			if di.Version != next[id] {
				t.Fatalf("%s: version %d, want %d", id, di.Version, next[id])
			}
			next[id]++
			last[id] = ""
			if len(di.Dialogs) == 1 {
				last[id] = di.Dialogs[0].Remote.Identity.URI
			}
		}
		done := len(last) == 5
		for _, v := range last {
			done = done && v == "sip:last@demo.callpark.test"
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last states %v", last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	_ = m.Write(&d)
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
