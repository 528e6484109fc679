package presence

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpark/callpark/internal/deadline"
)

// Defaults of Config.
const (
	DefaultExpires          = 3600 * time.Second
	DefaultMinExpires       = 60 * time.Second
	DefaultMaxExpires       = 7200 * time.Second
	DefaultNotifyTimeout    = 5 * time.Second
	DefaultMaxSubscriptions = 100_000
	DefaultMaxInFlight      = 64
)

// Config holds the notifier's dependencies and limits.
type Config struct {
	// Send sends one NOTIFY and returns its final response (a sipgo
	// client's Do bound to the core's SIP address).
	Send func(ctx context.Context, req *sip.Request) (*sip.Response, error)
	// Contact is the core's Contact URI, put in 200 OK and every NOTIFY.
	Contact sip.Uri
	Log     *slog.Logger
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Expiry bounds; zero values take the defaults above.
	DefaultExpires, MinExpires, MaxExpires time.Duration
	// NotifyTimeout is how long a NOTIFY may wait for its answer before the
	// subscriber is considered gone.
	NotifyTimeout time.Duration
	// MaxSubscriptions caps the table (503 beyond it).
	MaxSubscriptions int
	// MaxInFlight caps the NOTIFYs awaiting their answer. A change watched
	// by a thousand phones would otherwise send a thousand NOTIFYs at once,
	// and their thousand 200 OKs overflow the core's UDP receive buffer
	// (about 90 datagrams by default on Linux): the lost ones are
	// retransmitted 500 ms later (T1) and the lamps lag.
	MaxInFlight int
}

// Entity is what a SUBSCRIBE watches: User (the Request-URI user, "711")
// of Customer, whose SIP domain is Domain.
type Entity struct {
	Customer, User, Domain string
}

// Server keeps the subscriptions and entity states. Create it with New,
// run its expiry loop with Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	ctx    context.Context // ends when Run ends: in-flight NOTIFYs give up
	cancel context.CancelFunc
	wake   chan struct{}
	flight chan struct{} // one token per NOTIFY awaiting its answer

	mu       sync.Mutex
	subs     map[dialogKey]*sub
	entities map[entityKey]*entity
	expiry   deadline.Queue[*sub] // subscriptions by expiry
}

type entityKey struct{ customer, user string }

type entity struct {
	state State
	known bool
	subs  map[*sub]struct{}
}

// dialogKey identifies a subscription by its Call-ID and the subscriber's
// tag; our tag is checked on refreshes.
type dialogKey struct{ callID, fromTag string }

// sub is one subscription.
type sub struct {
	key       dialogKey
	ent       entityKey
	domain    string
	toTag     string
	eventID   string
	to        sip.ToHeader // the subscriber's From, as our To
	routes    []string     // Route set from Record-Route
	expiresAt atomic.Int64 // unix nanoseconds

	mu        sync.Mutex
	remote    sip.Uri // subscriber's Contact: the NOTIFY Request-URI
	dest      string  // where the SUBSCRIBE came from (NAT-safe)
	transport string
	version   uint32 // of the next NOTIFY
	cseq      uint32
	pending   State
	known     bool
	final     string // reason of the terminating NOTIFY, once queued
	dirty     bool
	sending   bool
	ended     bool
}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Send == nil {
		return nil, errors.New("presence: Send is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.DefaultExpires <= 0 {
		cfg.DefaultExpires = DefaultExpires
	}
	if cfg.MinExpires <= 0 {
		cfg.MinExpires = DefaultMinExpires
	}
	if cfg.MaxExpires <= 0 {
		cfg.MaxExpires = DefaultMaxExpires
	}
	if cfg.MaxExpires < cfg.MinExpires {
		cfg.MaxExpires = cfg.MinExpires
	}
	cfg.DefaultExpires = min(max(cfg.DefaultExpires, cfg.MinExpires), cfg.MaxExpires)
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = DefaultNotifyTimeout
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		metrics:  m,
		wake:     make(chan struct{}, 1),
		flight:   make(chan struct{}, cfg.MaxInFlight),
		subs:     map[dialogKey]*sub{},
		entities: map[entityKey]*entity{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Count is the number of live subscriptions.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Lookup returns the state last set for an entity; known is false when it
// was never set.
func (s *Server) Lookup(customer, user string) (st State, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entities[entityKey{customer, user}]; e != nil {
		return e.state, e.known
	}
	return State{}, false
}

// Set records the state of an entity and notifies its subscribers. It
// returns how many were notified (none when the state did not change).
func (s *Server) Set(customer, user string, st State) int {
	k := entityKey{customer, user}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entities[k]
	if e == nil {
		e = &entity{subs: map[*sub]struct{}{}}
		s.entities[k] = e
	}
	if e.known && e.state == st {
		return 0
	}
	e.state, e.known = st, true
	for sb := range e.subs {
		s.queueLocked(sb, st, true, "")
	}
	return len(e.subs)
}

// Subscribe handles a SUBSCRIBE for the dialog package whose sender was
// authenticated for e.Customer: it answers with respond (200, or the
// failure) and sends the NOTIFYs that follow.
func (s *Server) Subscribe(req *sip.Request, respond func(*sip.Response) error, e Entity) {
	reject := func(code int, reason, metric string, hdrs ...sip.Header) {
		s.metrics.rejected.WithLabelValues(metric).Inc()
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		_ = respond(res)
	}
	evh := req.GetHeader("Event")
	if evh == nil {
		evh = req.GetHeader("o")
	}
	if evh == nil {
		reject(489, "Bad Event", "bad_event", sip.NewHeader("Allow-Events", Package))
		return
	}
	pkg, evID, err := ParseEvent(evh.Value())
	if err != nil || pkg != Package {
		reject(489, "Bad Event", "bad_event", sip.NewHeader("Allow-Events", Package))
		return
	}
	var accept []string
	for _, h := range req.GetHeaders("Accept") {
		accept = append(accept, h.Value())
	}
	if !Accepts(accept) {
		reject(sip.StatusNotAcceptable, "Not Acceptable", "not_acceptable", sip.NewHeader("Accept", ContentType))
		return
	}
	from, to, cid := req.From(), req.To(), req.CallID()
	var fromTag string
	if from != nil {
		fromTag, _ = from.Params.Get("tag")
	}
	if from == nil || to == nil || cid == nil || fromTag == "" || e.User == "" {
		reject(sip.StatusBadRequest, "Missing Dialog Identifiers", "malformed")
		return
	}
	contact := req.Contact()
	if contact == nil {
		reject(sip.StatusBadRequest, "Missing Contact", "malformed")
		return
	}
	expires := s.cfg.DefaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, err := ParseExpires(h.Value())
		if err != nil {
			reject(sip.StatusBadRequest, "Malformed Expires", "malformed")
			return
		}
		expires = time.Duration(min(n, int64(s.cfg.MaxExpires/time.Second))) * time.Second
		if expires != 0 && expires < s.cfg.MinExpires {
			reject(423, "Interval Too Brief", "too_brief",
				sip.NewHeader("Min-Expires", strconv.Itoa(int(s.cfg.MinExpires/time.Second))))
			return
		}
	}
	key := dialogKey{callID: cid.Value(), fromTag: fromTag}
	toTag, _ := to.Params.Get("tag")

	s.mu.Lock()
	defer s.mu.Unlock()
	sb := s.subs[key]
	switch {
	case toTag != "":
		// A refresh (or unsubscribe) inside an existing subscription.
		if sb == nil || sb.toTag != toTag || sb.ent != (entityKey{e.Customer, e.User}) {
			reject(sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist", "no_subscription")
			return
		}
		sb.mu.Lock()
		ended := sb.ended
		sb.mu.Unlock()
		if ended {
			reject(sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist", "no_subscription")
			return
		}
	case sb != nil:
		// A new SUBSCRIBE re-using the dialog identifiers of a live
		// subscription (a phone that lost our 200): take it as a refresh.
		if sb.ent != (entityKey{e.Customer, e.User}) {
			reject(sip.StatusForbidden, "Dialog Identifiers In Use", "malformed")
			return
		}
	default:
		if len(s.subs) >= s.cfg.MaxSubscriptions {
			reject(sip.StatusServiceUnavailable, "Too Many Subscriptions", "full", sip.NewHeader("Retry-After", "60"))
			return
		}
		sb = &sub{
			key:     key,
			ent:     entityKey{e.Customer, e.User},
			domain:  e.Domain,
			toTag:   sip.GenerateTagN(16),
			eventID: evID,
			to:      from.AsTo(),
			cseq:    1,
		}
		for _, rr := range req.GetHeaders("Record-Route") {
			sb.routes = append(sb.routes, rr.Value())
		}
	}
	// The subscriber may move (re-registration behind NAT): follow it.
	sb.mu.Lock()
	sb.remote = *contact.Address.Clone()
	sb.dest = req.Source()
	sb.transport = req.Transport()
	sb.mu.Unlock()

	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	if t := res.To(); t != nil {
		t.Params.Add("tag", sb.toTag)
	}
	res.AppendHeader(&sip.ContactHeader{Address: s.cfg.Contact})
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	if err := respond(res); err != nil {
		s.log.Debug("subscribe: respond failed", "err", err)
	}

	ent := s.entityLocked(sb.ent)
	if expires == 0 {
		// Unsubscribe, or a one-shot fetch: one last NOTIFY with the state.
		s.removeLocked(sb)
		s.queueLocked(sb, ent.state, ent.known, "timeout")
		return
	}
	if s.subs[key] == nil {
		s.subs[key] = sb
		ent.subs[sb] = struct{}{}
		s.metrics.subscriptions.Set(float64(len(s.subs)))
	}
	at := time.Now().Add(expires)
	sb.expiresAt.Store(at.UnixNano())
	s.expiry.Set(sb, at)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	// RFC 6665 4.2.1.2: a NOTIFY follows every accepted SUBSCRIBE.
	s.queueLocked(sb, ent.state, ent.known, "")
}

// entityLocked returns the entity record of k, creating an unknown one.
func (s *Server) entityLocked(k entityKey) *entity {
	e := s.entities[k]
	if e == nil {
		e = &entity{subs: map[*sub]struct{}{}}
		s.entities[k] = e
	}
	return e
}

// removeLocked takes sb out of the tables (it may still send its last
// NOTIFY).
func (s *Server) removeLocked(sb *sub) {
	s.expiry.Remove(sb)
	if s.subs[sb.key] == sb {
		delete(s.subs, sb.key)
		s.metrics.subscriptions.Set(float64(len(s.subs)))
	}
	if e := s.entities[sb.ent]; e != nil {
		delete(e.subs, sb)
		if len(e.subs) == 0 && !e.known {
			delete(s.entities, sb.ent)
		}
	}
}
