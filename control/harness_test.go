package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// testDialplans: demo and acme share extension numbers; quiet has parking
// off; sixty uses the codes 64/65/66 and may park on any number. 202 of
// demo may do nothing; 201 of acme may retrieve but not park.
var testDialplans = map[string]string{
	"rules/default.yaml": `
kind: rule
name: default
type: PBX
codes:
  park: "*70"
  release: "*71"
  slot_release: "71"
random_digits: 4
`,
	"customers/demo.yaml": `
kind: customer
name: demo
domain: demo.callpark.test
rule: default
features:
  parking: true
  dial_timeout: 20s
accounts:
  - {extension: "200", password: p200}
  - {extension: "201", password: p201}
  - {extension: "202", password: p202, permissions: []}
  - {extension: "333", password: p333}
  - {extension: "999", password: p999}
dids:
  - {number: "+15551230000", extension: "333"}
trunks:
  - {name: carrier, address: 192.0.2.10}
slots:
  - {number: "1", label: Reception}
  - {number: "2"}
`,
	"customers/acme.yaml": `
kind: customer
name: acme
domain: acme.callpark.test
rule: default
accounts:
  - {extension: "200", password: a200}
  - {extension: "201", password: a201, permissions: [retrieve]}
  - {extension: "333", password: a333}
slots:
  - {number: "1"}
`,
	"rules/pbx-64.yaml": `
kind: rule
name: pbx-64
codes: {park: "64", release: "65", slot_release: "66"}
random_digits: 3
park_any_number: true
`,
	"customers/sixty.yaml": `
kind: customer
name: sixty
domain: sixty.callpark.test
rule: pbx-64
accounts:
  - {extension: "200", password: s200}
  - {extension: "333", password: s333}
`,
	"customers/quiet.yaml": `
kind: customer
name: quiet
domain: quiet.callpark.test
rule: default
features:
  parking: false
accounts:
  - {extension: "200", password: q200}
  - {extension: "333", password: q333}
`,
}

func loadTestDialplans(t *testing.T) *dialplans.Set {
	t.Helper()
	return loadDialplans(t, testDialplans)
}

// fakeBus records commands and published events. Every command succeeds
// unless fail says otherwise; dial replies carry new leg ids out-1, out-2...
type fakeBus struct {
	mu        sync.Mutex
	cmds      []*events.Command
	published []*events.Event
	dials     int
	fail      func(c *events.Command) *events.Reply
	handler   func(*events.Event)
	// outByCall names a dial's new leg after the leg it is for ("a" ->
	// "a-out") instead of out-N, for tests that dial concurrently.
	outByCall bool
}

func (b *fakeBus) Do(_ context.Context, c *events.Command) (*events.Reply, error) {
	b.mu.Lock()
	cp := *c
	cp.Prompts = slices.Clone(c.Prompts)
	b.cmds = append(b.cmds, &cp)
	fail := b.fail
	r := &events.Reply{V: events.Version, OK: true}
	if c.Op == events.OpDial {
		b.dials++
		r.Call = fmt.Sprintf("out-%d", b.dials)
		if b.outByCall {
			r.Call = c.Call + "-out"
		}
	}
	b.mu.Unlock()
	if fail != nil {
		if fr := fail(c); fr != nil {
			return fr, fr.Err(c.Op)
		}
	}
	return r, nil
}

func (b *fakeBus) Publish(e *events.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cp := *e
	b.published = append(b.published, &cp)
}

func (b *fakeBus) SubscribeEvents(_ string, fn func(*events.Event)) (*nats.Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler = fn
	return nil, nil
}

func (b *fakeBus) setFail(fn func(c *events.Command) *events.Reply) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = fn
}

// harness drives a Control through HandleEvent.
type harness struct {
	t   *testing.T
	c   *Control
	bus *fakeBus
	reg *prometheus.Registry
	ctx context.Context
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	set := loadTestDialplans(t)
	return harnessOn(t, func() *dialplans.Set { return set })
}

// harnessOn is a harness whose Control reads its dialplans from plans;
// edits adjust the Config first.
func harnessOn(t *testing.T, plans func() *dialplans.Set, edits ...func(*Config)) *harness {
	t.Helper()
	bus := &fakeBus{}
	reg := prometheus.NewRegistry()
	cfg := Config{
		Bus:        bus,
		Dialplans:  plans,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: reg,
		Workers:    4,
		Rand:       rand.New(rand.NewPCG(7, 7)),
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, c: c, bus: bus, reg: reg, ctx: t.Context()}
}

// refused: leg, a new call from an account of customer dialing dialed, is
// answered, hears prompt and is hung up; nothing else is commanded.
func (h *harness) refused(customer, leg, from, dialed, prompt string) {
	h.t.Helper()
	h.send(inbound(customer, leg, from, dialed))
	h.expect("answer "+leg, "play "+leg+" "+prompt+" +hangup")
}

func (h *harness) send(e *events.Event) {
	h.t.Helper()
	h.c.HandleEvent(h.ctx, e)
}

// take returns the commands sent since the last take, one line each.
func (h *harness) take() []string {
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	out := make([]string, 0, len(h.bus.cmds))
	for _, c := range h.bus.cmds {
		out = append(out, describe(c))
	}
	h.bus.cmds = nil
	return out
}

// events returns the events published since the last call.
func (h *harness) events() []*events.Event {
	h.bus.mu.Lock()
	defer h.bus.mu.Unlock()
	out := h.bus.published
	h.bus.published = nil
	return out
}

func (h *harness) expect(want ...string) {
	h.t.Helper()
	got := h.take()
	if !slices.Equal(got, want) {
		h.t.Fatalf("commands:\n got  %q\n want %q", got, want)
	}
}

// describe is a command as one readable line.
func describe(c *events.Command) string {
	switch c.Op {
	case events.OpDial:
		return fmt.Sprintf("dial %s %s from=%s timeout=%d bridge=%v [%s]", c.Call, c.Account, c.From.User, c.TimeoutMs, c.Bridge, c.Customer)
	case events.OpReject:
		return fmt.Sprintf("reject %s %d", c.Call, c.Code)
	case events.OpMusic:
		on := "off"
		if c.On {
			on = "on"
		}
		return fmt.Sprintf("music %s %s", c.Call, on)
	case events.OpBridge:
		return fmt.Sprintf("bridge %s %s", c.Call, c.Peer)
	case events.OpPlay:
		s := fmt.Sprintf("play %s %s", c.Call, strings.Join(c.Prompts, ","))
		if c.HangupAfter {
			s += " +hangup"
		}
		return s
	case events.OpReferNotify:
		return fmt.Sprintf("refer_notify %s %s %d", c.Call, c.ReferID, c.Code)
	}
	return c.Op + " " + c.Call
}

// Event builders.

func inbound(customer, call, account, dialed string) *events.Event {
	return &events.Event{
		Type: events.CallStarted, Source: events.SourceCore, Customer: customer, Call: call, Direction: events.Inbound,
		Account: account, Dialed: dialed,
		From: events.Party{User: account, Display: "Caller " + account},
		To:   events.Party{User: dialed},
	}
}

func fromTrunk(customer, call, dialed string) *events.Event {
	return &events.Event{
		Type: events.CallStarted, Source: events.SourceCore, Customer: customer, Call: call, Direction: events.Inbound,
		Trunk: "carrier", Dialed: dialed, From: events.Party{User: "+15559870000", Display: "Client"},
		To: events.Party{User: dialed},
	}
}

func outbound(customer, call, peer, account string) *events.Event {
	return &events.Event{
		Type: events.CallStarted, Source: events.SourceCore, Customer: customer, Call: call, Direction: events.Outbound,
		DialedFor: peer, Linked: peer, Account: account, To: events.Party{User: account},
	}
}

func ev(typ, customer, call string) *events.Event {
	return &events.Event{Type: typ, Source: events.SourceCore, Customer: customer, Call: call}
}

// talk sets up a client call from the trunk (leg client) answered by
// extension ext (leg returned, "out-N"), and returns the two leg ids.
func (h *harness) talk(customer, client, ext string) (string, string) {
	h.t.Helper()
	h.send(fromTrunk(customer, client, ext))
	cmds := h.take()
	if len(cmds) != 1 || !strings.HasPrefix(cmds[0], "dial "+client+" "+ext) {
		h.t.Fatalf("talk: commands %q", cmds)
	}
	h.bus.mu.Lock()
	out := fmt.Sprintf("out-%d", h.bus.dials)
	h.bus.mu.Unlock()
	h.send(outbound(customer, out, client, ext))
	h.send(&events.Event{Type: events.CallAnswered, Customer: customer, Call: client, Direction: events.Inbound})
	h.send(&events.Event{Type: events.CallAnswered, Customer: customer, Call: out, Direction: events.Outbound, DialedFor: client})
	h.expect()
	h.checkChannel(client, state.StateUp, out)
	h.checkChannel(out, state.StateUp, client)
	return client, out
}

// holdAndTalk is talk, then the extension's phone holds the call.
func (h *harness) talkAndHold(customer, client, ext string) (string, string) {
	h.t.Helper()
	client, john := h.talk(customer, client, ext)
	h.send(ev(events.CallHeld, customer, john))
	h.expect("music " + client + " on")
	h.checkChannel(john, state.StateHeld, client)
	return client, john
}

func (h *harness) checkChannel(id, st, peer string) {
	h.t.Helper()
	ch := h.c.State().Channel(id)
	if ch == nil {
		h.t.Fatalf("channel %s missing", id)
	}
	if ch.State != st || ch.Peer != peer {
		h.t.Fatalf("channel %s: state %q peer %q, want %q %q", id, ch.State, ch.Peer, st, peer)
	}
}

func (h *harness) checkGone(id string) {
	h.t.Helper()
	if ch := h.c.State().Channel(id); ch != nil {
		h.t.Fatalf("channel %s still there: %+v", id, ch)
	}
}

// onlyEvent checks exactly one event was published and returns it.
func (h *harness) onlyEvent(typ string) *events.Event {
	h.t.Helper()
	evs := h.events()
	if len(evs) != 1 || evs[0].Type != typ || evs[0].Park == nil {
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		h.t.Fatalf("published %v, want one %s with a park", types, typ)
	}
	return evs[0]
}

func (h *harness) noEvents() {
	h.t.Helper()
	if evs := h.events(); len(evs) != 0 {
		h.t.Fatalf("published %d unexpected events, first %s", len(evs), evs[0].Type)
	}
}

// metric returns the value of a counter or gauge with the given labels.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// retrievedBy is what a retrieval by leg r of the call parked on leg parked
// (a trunk's caller) sends the core: answer, bridge, then the retriever's
// phone is told who it talks to (a carrier is told nothing).
func retrievedBy(r, parked string) []string {
	return []string{"answer " + r, "bridge " + r + " " + parked, "identity " + r}
}
