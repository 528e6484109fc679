package state

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
)

// Errors of the Store.
var (
	// ErrNumberBusy: a call is already parked under that key.
	ErrNumberBusy = errors.New("state: park number busy")
	// ErrAlreadyParked: the channel is already parked under another key.
	ErrAlreadyParked = errors.New("state: channel already parked")
	// ErrNotParked: nothing is parked under that key or for that channel.
	ErrNotParked = errors.New("state: nothing parked")
	// ErrNoChannel: no channel has that id.
	ErrNoChannel = errors.New("state: no such channel")
	// ErrNoNumber: every random number of that length is in use.
	ErrNoNumber = errors.New("state: no free random number")
)

// Store is the control plane's in-memory database. It is safe for
// concurrent use.
type Store struct {
	// mu guards t: read methods hold it shared, every write exclusive for
	// the whole of its read-check-write.
	mu sync.RWMutex
	t  tables

	obsMu     sync.RWMutex
	observers []func(p *Parked, parked bool)
}

// OnParked registers fn to run after every committed change of the parked
// table: parked is true when p was parked (or re-parked), false when it left
// parking (retrieved, abandoned, returned). fn runs on the committing
// goroutine, after the transaction, and gets its own copy of p. Slot lamps,
// automatic-retrieval timers and API events hang off this one hook.
func (s *Store) OnParked(fn func(p *Parked, parked bool)) {
	s.obsMu.Lock()
	s.observers = append(s.observers, fn)
	s.obsMu.Unlock()
}

func (s *Store) notifyParked(p *Parked, parked bool) {
	s.obsMu.RLock()
	obs := s.observers
	s.obsMu.RUnlock()
	for _, fn := range obs {
		fn(p.Copy(), parked)
	}
}

// New returns an empty Store.
func New() (*Store, error) {
	return &Store{t: newTables()}, nil
}

// Channel returns a copy of the channel id, or nil.
func (s *Store) Channel(id string) *Channel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.channels[id].Copy()
}

// Channels returns copies of every channel, ordered by id.
func (s *Store) Channels() []*Channel {
	s.mu.RLock()
	rows := make([]*Channel, 0, len(s.t.channels))
	for _, ch := range s.t.channels {
		rows = append(rows, ch)
	}
	out := sortedCopies(rows, byChannelID)
	s.mu.RUnlock()
	return out
}

func byChannelID(a, b *Channel) bool { return a.ID < b.ID }

// ChannelsByAccount returns copies of the legs of one account, ordered by id.
func (s *Store) ChannelsByAccount(customer, account string) []*Channel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.accountLegs(customer, account)
}

// accountLegs is ChannelsByAccount with s.mu held.
func (s *Store) accountLegs(customer, account string) []*Channel {
	set := s.t.byAccount[accountKey{customer, account}]
	rows := make([]*Channel, 0, len(set))
	for _, ch := range set {
		rows = append(rows, ch)
	}
	return sortedCopies(rows, byChannelID)
}

// HeldChannel returns the leg of account that the account's phone put on
// hold and whose peer is still up (talking, hearing music) and not parked:
// the call that a park code dialed from that phone parks. With several, the
// newest wins. It returns nil when there is none.
func (s *Store) HeldChannel(customer, account string) *Channel {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *Channel
	for _, ch := range s.t.byAccount[accountKey{customer, account}] {
		if ch.State != StateHeld || ch.Peer == "" {
			continue
		}
		peer := s.t.channels[ch.Peer]
		if peer == nil || peer.Customer != customer || peer.State != StateUp {
			continue
		}
		if s.t.parkedBy[peer.ID] != nil {
			continue
		}
		if best == nil || ch.Created.After(best.Created) || (ch.Created.Equal(best.Created) && ch.ID > best.ID) {
			best = ch
		}
	}
	return best.Copy()
}

// UpsertChannel inserts or replaces ch. The store keeps its own copy.
func (s *Store) UpsertChannel(ch *Channel) error {
	if ch.ID == "" {
		return errors.New("state: channel without id")
	}
	cp := ch.Copy()
	s.mu.Lock()
	s.t.putChannel(cp)
	s.mu.Unlock()
	return nil
}

// UpdateChannel applies fn to a copy of channel id and stores the result,
// all in one transaction, so concurrent updates of different fields never
// lose each other. It returns the updated copy, or ErrNoChannel.
func (s *Store) UpdateChannel(id string, fn func(ch *Channel)) (*Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.t.channels[id].Copy()
	if ch == nil {
		return nil, ErrNoChannel
	}
	fn(ch)
	ch.ID = id
	s.t.putChannel(ch)
	return ch.Copy(), nil
}

// DeleteChannel removes channel id and returns what it was, or nil when it
// did not exist.
func (s *Store) DeleteChannel(id string) (*Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.t.channels[id]
	if ch == nil {
		return nil, nil
	}
	s.t.delChannel(ch)
	return ch.Copy(), nil
}

// EndChannel removes channel id and its park, if it had one, in one
// transaction (the leg is over): what the leg was (nil when unknown) and
// the park it ended (nil when none).
func (s *Store) EndChannel(id string) (*Channel, *Parked) {
	s.mu.Lock()
	ch := s.t.channels[id]
	if ch != nil {
		s.t.delChannel(ch)
	}
	p := s.t.parkedBy[id]
	if p != nil {
		s.t.delParked(p)
	}
	s.mu.Unlock()
	if p != nil {
		s.notifyParked(p, false)
	}
	return ch.Copy(), p.Copy()
}

// Intn is the part of math/rand/v2's *Rand that RandomNumber uses. It need
// not be safe for concurrent use: RandomNumber's caller serialises.
type Intn interface {
	IntN(n int) int
}

// RandomNumber returns a random number of exactly digits digits (no leading
// zero) that no call of customer is parked under (key "*"+number). It does
// not reserve it: Park does, and may still answer ErrNumberBusy to a racing
// caller, who should draw again.
func (s *Store) RandomNumber(customer string, digits int, rnd Intn) (string, error) {
	if digits < 1 || digits > 9 {
		return "", fmt.Errorf("state: random number of %d digits", digits)
	}
	lo := 1
	for range digits - 1 {
		lo *= 10
	}
	hi := lo * 10
	span := hi - lo
	s.mu.RLock()
	defer s.mu.RUnlock()
	free := func(n int) bool { return s.t.parked[parkKey{customer, RandomKey(strconv.Itoa(n))}] == nil }
	for range 32 {
		if n := lo + rnd.IntN(span); free(n) {
			return strconv.Itoa(n), nil
		}
	}
	// Crowded: walk from a random start so a free number is always found.
	start := rnd.IntN(span)
	for i := range span {
		if n := lo + (start+i)%span; free(n) {
			return strconv.Itoa(n), nil
		}
	}
	return "", ErrNoNumber
}

// UpsertRegistration stores the contacts of an account through a node;
// none deletes them.
func (s *Store) UpsertRegistration(r *Registration) error {
	r = r.Copy()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.Contacts) == 0 {
		if old := s.t.regs[regKey{r.Customer, r.Account, r.Node}]; old != nil {
			s.t.delReg(old)
		}
		return nil
	}
	s.t.putReg(r)
	return nil
}

// Registration returns a copy of the contacts of an account through node,
// or nil.
func (s *Store) Registration(customer, account, node string) *Registration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.regs[regKey{customer, account, node}].Copy()
}

// DeleteRegistrationsVia forgets every registration through node (it is
// gone) and returns how many there were.
func (s *Store) DeleteRegistrationsVia(node string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []*Registration
	for _, r := range s.t.regs {
		if r.Node == node {
			gone = append(gone, r)
		}
	}
	for _, r := range gone {
		s.t.delReg(r)
	}
	return len(gone)
}

// RegisteredVia returns the nodes an account has contacts registered
// through, sorted.
func (s *Store) RegisteredVia(customer, account string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var nodes []string
	for k := range s.t.regsCust[customer] {
		if k.account == account {
			nodes = append(nodes, k.node)
		}
	}
	slices.Sort(nodes)
	return nodes
}
