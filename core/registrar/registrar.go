// Package registrar is callpark's SIP registrar and request authenticator.
//
// A Registrar answers REGISTER (RFC 3261 section 10) for the phones of every
// customer: each customer has its own SIP domain, which is also the digest
// realm, and its accounts and passwords come from a Directory that may be
// swapped at any time (live reload). Authentication is HTTP digest (RFC 2617,
// RFC 7616) with MD5 and qop=auth; clients that ignore qop and answer in the
// RFC 2069 form are accepted too. The same check guards INVITE, REFER and
// SUBSCRIBE through Authenticate.
//
// Nonces are stateless to verify: each carries its issue time and an HMAC
// over it, so a restart with the same Secret keeps them valid and a forged one
// is spotted without a lookup. What is kept per nonce is only the highest
// nonce count (nc) accepted, to refuse replays; those counters are dropped
// once the nonce is older than NonceTTL, after which a client is told
// stale=true and answers the fresh challenge without asking its user again.
//
// Several contacts may be bound to one account (a desk phone and a softphone);
// each binding keeps the Contact URI and the address the REGISTER really came
// from (Source), which is where requests to a phone behind NAT must be sent.
// Run removes bindings when they expire, with one goroutine and one timer.
//
// Metrics are left to the caller: OnChange and OnAuthFailure are called for
// every change and every refused request, and Count gives the number of
// bindings. The package has no globals.
//
// Locking: Registrar.mu guards the bindings and is taken before the lock of
// the OnChange queue (an internal/mailbox Box, drained by whichever caller
// finds it idle); the nonce counters have their own leaf lock. No lock is held while OnChange or OnAuthFailure runs.
package registrar

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/internal/deadline"
	"github.com/callpark/callpark/internal/mailbox"
)

// Directory resolves credentials. The realm of an account is its customer's
// SIP domain.
type Directory interface {
	// Account returns the customer id and the plain password of user@domain.
	Account(domain, user string) (customer, password string, ok bool)
}

// Options configure a Registrar. Zero values take the defaults noted.
type Options struct {
	// MinExpires is the shortest registration accepted (default 60s); a
	// shorter one gets 423 Interval Too Brief.
	MinExpires time.Duration
	// MaxExpires caps granted registrations (default 3600s).
	MaxExpires time.Duration
	// DefaultExpires is granted when the REGISTER names no expiry (default 3600s).
	DefaultExpires time.Duration
	// Algorithms lists the digest algorithms realm's phones are challenged
	// with and may answer in ("MD5", "SHA-256"); nil or empty: both.
	Algorithms func(realm string) []string
	// NonceTTL is how long a nonce is accepted (default 30s); an older one is
	// answered with 401 and stale=true.
	NonceTTL time.Duration
	// MaxNonces bounds the nonces whose nonce counts are tracked at once
	// (default 262144: 11 MiB when full, 8,700 authenticated requests a
	// second for the default NonceTTL). Only nonces answered with a valid digest
	// are tracked, so reaching it takes that many authenticated requests
	// within NonceTTL; beyond it requests get a stale challenge until
	// counters expire.
	MaxNonces int
	// Secret is the HMAC key for nonces; a random one is made if nil.
	// Sharing it lets nonces survive a restart or be verified by a peer.
	Secret []byte
	// Log receives the registrar's logs; slog.Default() if nil.
	Log *slog.Logger
	// OnChange is called after every change of an account's bindings,
	// including expiry, with the account's current bindings (newest first).
	// Calls are made one at a time, in the order of the changes, outside the
	// registrar's locks; OnChange may call Contacts or Count.
	OnChange func(customer, account string, contacts []Binding)
	// OnAuthFailure is called with one of the Reason constants each time a
	// request is refused for its credentials (not for the first challenge of
	// a request that carried none).
	OnAuthFailure func(reason string)
	// OnAuthenticated, when set, is called with each request whose
	// credentials were accepted.
	OnAuthenticated func(*sip.Request)
	// LocalAddrs are this server's own "host:port"s: a digest uri naming
	// one of them is accepted besides the Request-URI (see isLocalURI).
	LocalAddrs []string
	// Limiter, when set, is told of every failed and successful
	// authentication and may lock an account out (see core/ban).
	Limiter Limiter
}

// Limiter counts authentication failures per source address and account.
// Accounts are named "realm/user".
type Limiter interface {
	// Locked reports whether credentials for account from addr are to be
	// refused without checking them.
	Locked(account string, addr netip.Addr) bool
	Fail(addr netip.Addr, account string)
	Succeed(addr netip.Addr, account string)
}

// Reasons passed to Options.OnAuthFailure.
const (
	ReasonMalformed        = "malformed"         // credentials could not be parsed (400)
	ReasonUnsupported      = "unsupported"       // algorithm or qop we do not offer (401)
	ReasonUsernameMismatch = "username_mismatch" // digest username is not the From/To user (403)
	ReasonUnknownUser      = "unknown_user"      // no such user@domain (403)
	ReasonBadPassword      = "bad_password"      // digest did not match (403)
	ReasonInvalidNonce     = "invalid_nonce"     // nonce not minted by us for this realm (401)
	ReasonStaleNonce       = "stale_nonce"       // nonce older than NonceTTL (401 stale)
	ReasonReplay           = "replay"            // nonce count not above the last one seen (401 stale)
	ReasonNonceTableFull   = "nonce_table_full"  // MaxNonces reached (401 stale)
	ReasonNoDirectory      = "no_directory"      // the directory func returned nil (503)
	ReasonURIMismatch      = "uri_mismatch"      // digest uri is not the Request-URI (400)
	ReasonLocked           = "locked"            // account locked by the Limiter (403)
)

// Binding is one registered contact of an account.
type Binding struct {
	// Contact is the URI from the Contact header.
	Contact sip.Uri
	// Source is the "ip:port" the REGISTER came from (req.Source()); send
	// requests for the phone there, as it may be behind NAT.
	Source string
	// Transport is the transport the REGISTER came over: "udp", "tcp", ...
	Transport string
	// Expires is when the binding lapses unless refreshed.
	Expires time.Time
	// CallID and CSeq are from the REGISTER that last refreshed the binding.
	CallID string
	CSeq   uint32
}

// Identity is who an authenticated request came from.
type Identity struct {
	Customer string
	Account  string // the user part of the account, e.g. "200"
	Domain   string // the customer's SIP domain (lower case), also the realm
}

// Registrar is a SIP registrar with digest authentication. It is safe for
// concurrent use. Make one with New.
type Registrar struct {
	dir    func() Directory
	opts   Options
	log    *slog.Logger
	nonces *nonces
	now    func() time.Time // time.Now; replaced in tests
	wake   chan struct{}    // nudges Run when the earliest expiry moves

	mu    sync.Mutex
	aors  map[aorKey][]*entry
	queue deadline.Queue[*entry] // bindings by expiry
	seq   uint64

	events *mailbox.Box[changeEvent] // OnChange events, in the order of changes
}

type aorKey struct{ customer, account string }

// entry is a Binding as stored: its key, the Contact's header parameters (for
// the 200 OK) and the order of its registration (seq).
type entry struct {
	aor    aorKey
	key    string
	params sip.HeaderParams
	b      Binding
	seq    uint64 // higher is newer
}

type changeEvent struct {
	aor      aorKey
	contacts []Binding
}

// New returns a registrar. dir is called for every request, so a directory
// swapped on reload is used at once.
func New(dir func() Directory, opts Options) *Registrar {
	if opts.MinExpires <= 0 {
		opts.MinExpires = 60 * time.Second
	}
	if opts.MaxExpires <= 0 {
		opts.MaxExpires = 3600 * time.Second
	}
	if opts.MaxExpires < opts.MinExpires {
		opts.MaxExpires = opts.MinExpires
	}
	if opts.DefaultExpires <= 0 {
		opts.DefaultExpires = 3600 * time.Second
	}
	opts.DefaultExpires = min(max(opts.DefaultExpires, opts.MinExpires), opts.MaxExpires)
	if opts.NonceTTL <= 0 {
		opts.NonceTTL = 30 * time.Second
	}
	if opts.MaxNonces <= 0 {
		opts.MaxNonces = 1 << 18
	}
	if opts.Secret == nil {
		opts.Secret = make([]byte, 32)
		_, _ = rand.Read(opts.Secret) // never fails (Go 1.24+)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	r := &Registrar{
		dir:    dir,
		opts:   opts,
		log:    opts.Log,
		nonces: newNonces(opts.Secret, opts.NonceTTL, opts.MaxNonces),
		now:    time.Now,
		wake:   make(chan struct{}, 1),
		events: mailbox.New[changeEvent](),
		aors:   make(map[aorKey][]*entry),
	}
	r.nonces.tracking = r.poke
	return r
}

// poke wakes Run to look at its bindings and nonces again.
func (r *Registrar) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Contacts returns the unexpired bindings of an account, newest first.
func (r *Registrar) Contacts(customer, account string) []Binding {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	return snapshot(r.aors[aorKey{customer, account}], now)
}

// Count returns the number of bindings held. Expired bindings count until
// Run removes them, which it does as they expire.
func (r *Registrar) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queue.Len()
}

// Run removes bindings as they expire and calls OnChange for each account
// that lost some; it also drops the nonce counters of stale nonces. It uses
// one timer and returns nil when ctx ends. Run at most one at a time.
func (r *Registrar) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := r.now()
		next := r.sweep(now)
		// Every quarter of the TTL while nonces are tracked: a burst's
		// counts go (and their map's room with them) soon after they
		// are stale, not up to a whole TTL later.
		if r.nonces.purge(now) > 0 {
			if d := r.opts.NonceTTL / 4; next.IsZero() || next.After(now.Add(d)) {
				next = now.Add(d)
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-r.wake:
		}
	}
}

// sweep removes the bindings expired at now, notifies, and returns the next
// expiry (zero if none).
func (r *Registrar) sweep(now time.Time) time.Time {
	r.mu.Lock()
	changed := map[aorKey]bool{}
	for _, e := range r.queue.PopDue(now) {
		r.removeLocked(e)
		changed[e.aor] = true
		r.log.Debug("registration expired", "customer", e.aor.customer, "account", e.aor.account,
			"contact", e.b.Contact.String(), "source", e.b.Source)
	}
	for aor := range changed {
		r.enqueueLocked(aor, now)
	}
	next, _ := r.queue.Next()
	r.mu.Unlock()
	if len(changed) > 0 {
		r.notify()
	}
	return next
}

// removeLocked deletes e from its account and from the expiry queue.
func (r *Registrar) removeLocked(e *entry) {
	r.queue.Remove(e)
	list := r.aors[e.aor]
	if i := slices.Index(list, e); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(r.aors, e.aor)
	} else {
		r.aors[e.aor] = list
	}
}

// enqueueLocked queues an OnChange event with the account's bindings as they
// are now; called with r.mu held so events queue in the order of changes.
func (r *Registrar) enqueueLocked(aor aorKey, now time.Time) {
	if r.opts.OnChange == nil {
		return
	}
	r.events.Put(changeEvent{aor: aor, contacts: snapshot(r.aors[aor], now)})
}

// notify delivers queued OnChange events. The first caller to find the queue
// idle drains it, without holding a lock during the callback; others return
// at once and their events are delivered by that caller, in order.
func (r *Registrar) notify() {
	if r.opts.OnChange == nil {
		return
	}
	r.events.Drain(func(ev changeEvent) {
		r.opts.OnChange(ev.aor.customer, ev.aor.account, ev.contacts)
	})
}

// snapshot copies the unexpired bindings of list, newest first.
func snapshot(list []*entry, now time.Time) []Binding {
	if len(list) == 0 {
		return nil
	}
	live := sortedLive(list, now)
	out := make([]Binding, len(live))
	for i, e := range live {
		out[i] = e.b
		out[i].Contact = *e.b.Contact.Clone()
	}
	return out
}

// Remove drops the binding of contact from an account, as when the phone
// behind it stopped answering (a dial fork or a keep-alive timed out). It
// reports whether there was such a binding; OnChange is called if so.
func (r *Registrar) Remove(customer, account string, contact sip.Uri) bool {
	key := contactKey(&contact)
	aor := aorKey{customer, account}
	r.mu.Lock()
	var found *entry
	for _, e := range r.aors[aor] {
		if e.key == key {
			found = e
			break
		}
	}
	if found == nil {
		r.mu.Unlock()
		return false
	}
	r.removeLocked(found)
	r.enqueueLocked(aor, r.now())
	r.mu.Unlock()
	r.log.Info("unreachable contact removed", "customer", customer, "account", account,
		"contact", found.b.Contact.String(), "source", found.b.Source)
	r.notify()
	return true
}

// Bound is a binding with the account it belongs to.
type Bound struct {
	Customer, Account string
	Binding
}

// All returns a copy of every unexpired binding (for keep-alives).
func (r *Registrar) All() []Bound {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Bound, 0, r.queue.Len())
	for aor, list := range r.aors {
		for _, b := range snapshot(list, now) {
			out = append(out, Bound{Customer: aor.customer, Account: aor.account, Binding: b})
		}
	}
	return out
}
