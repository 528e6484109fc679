package state

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/go-memdb"
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
	db *memdb.MemDB

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
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &Store{db: db}, nil
}

// Channel returns a copy of the channel id, or nil.
func (s *Store) Channel(id string) *Channel {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return channelTxn(txn, id).Copy()
}

// Channels returns copies of every channel.
func (s *Store) Channels() []*Channel {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return collectTxn[Channel](txn, TableChannels, IndexID)
}

// ChannelsByAccount returns copies of the legs of one account.
func (s *Store) ChannelsByAccount(customer, account string) []*Channel {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return collectTxn[Channel](txn, TableChannels, IndexCustomerAccount, customer, account)
}

// HeldChannel returns the leg of account that the account's phone put on
// hold and whose peer is still up (talking, hearing music) and not parked:
// the call that a park code dialed from that phone parks. With several, the
// newest wins. It returns nil when there is none.
func (s *Store) HeldChannel(customer, account string) *Channel {
	txn := s.db.Txn(false)
	defer txn.Abort()
	var best *Channel
	for _, ch := range collectTxn[Channel](txn, TableChannels, IndexCustomerAccount, customer, account) {
		if ch.State != StateHeld || ch.Peer == "" {
			continue
		}
		peer := channelTxn(txn, ch.Peer)
		if peer == nil || peer.Customer != customer || peer.State != StateUp {
			continue
		}
		if parkedByChannelTxn(txn, peer.ID) != nil {
			continue
		}
		if best == nil || ch.Created.After(best.Created) {
			best = ch
		}
	}
	return best
}

// UpsertChannel inserts or replaces ch. The store keeps its own copy.
func (s *Store) UpsertChannel(ch *Channel) error {
	if ch.ID == "" {
		return errors.New("state: channel without id")
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	if err := txn.Insert(TableChannels, ch.Copy()); err != nil {
		return fmt.Errorf("state: upsert channel: %w", err)
	}
	txn.Commit()
	return nil
}

// UpdateChannel applies fn to a copy of channel id and stores the result,
// all in one transaction, so concurrent updates of different fields never
// lose each other. It returns the updated copy, or ErrNoChannel.
func (s *Store) UpdateChannel(id string, fn func(ch *Channel)) (*Channel, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	ch := channelTxn(txn, id).Copy()
	if ch == nil {
		return nil, ErrNoChannel
	}
	fn(ch)
	ch.ID = id
	if err := txn.Insert(TableChannels, ch); err != nil {
		return nil, fmt.Errorf("state: update channel: %w", err)
	}
	txn.Commit()
	return ch.Copy(), nil
}

// DeleteChannel removes channel id and returns what it was, or nil when it
// did not exist.
func (s *Store) DeleteChannel(id string) (*Channel, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	ch := channelTxn(txn, id)
	if ch == nil {
		return nil, nil
	}
	if err := txn.Delete(TableChannels, ch); err != nil {
		return nil, fmt.Errorf("state: delete channel: %w", err)
	}
	txn.Commit()
	return ch.Copy(), nil
}

// Park records p, unless its key is taken (ErrNumberBusy), its channel is
// already parked (ErrAlreadyParked) or gone (ErrNoChannel). The checks and
// the insert are one transaction.
//
// Requiring the channel keeps parks from outliving their leg: a leg that
// ends is deleted from channels first and its park removed after, so a Park
// racing with the end either fails here or is removed by the end.
func (s *Store) Park(p *Parked) error {
	if p.Customer == "" || p.Key == "" || p.Channel == "" {
		return errors.New("state: park needs customer, key and channel")
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	if channelTxn(txn, p.Channel) == nil {
		return ErrNoChannel
	}
	if parkedTxn(txn, p.Customer, p.Key) != nil {
		return ErrNumberBusy
	}
	if parkedByChannelTxn(txn, p.Channel) != nil {
		return ErrAlreadyParked
	}
	if err := txn.Insert(TableParked, p.Copy()); err != nil {
		return fmt.Errorf("state: park: %w", err)
	}
	txn.Commit()
	s.notifyParked(p, true)
	return nil
}

// ClaimParked removes and returns the call parked under key. Of any number
// of concurrent claims of the same key exactly one gets the call; the others
// get ErrNotParked.
func (s *Store) ClaimParked(customer, key string) (*Parked, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	p := parkedTxn(txn, customer, key)
	if p == nil {
		return nil, ErrNotParked
	}
	if err := txn.Delete(TableParked, p); err != nil {
		return nil, fmt.Errorf("state: claim: %w", err)
	}
	txn.Commit()
	s.notifyParked(p, false)
	return p.Copy(), nil
}

// MoveParked moves the call parked under from to the spot of to (its
// Key, Kind, Number and Code; the rest stays, the wait's clock too), in one
// transaction: ErrNotParked if nothing is at from, ErrNumberBusy if to's
// key is taken. Observers see the call leave from, then arrive at to.
func (s *Store) MoveParked(customer, from string, to *Parked) (*Parked, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	old := parkedTxn(txn, customer, from)
	if old == nil {
		return nil, ErrNotParked
	}
	if parkedTxn(txn, customer, to.Key) != nil {
		return nil, ErrNumberBusy
	}
	p := old.Copy()
	p.Key, p.Kind, p.Number, p.Code = to.Key, to.Kind, to.Number, to.Code
	if err := txn.Delete(TableParked, old); err != nil {
		return nil, fmt.Errorf("state: move: %w", err)
	}
	if err := txn.Insert(TableParked, p.Copy()); err != nil {
		return nil, fmt.Errorf("state: move: %w", err)
	}
	txn.Commit()
	s.notifyParked(old, false)
	s.notifyParked(p, true)
	return p.Copy(), nil
}

// UnparkChannel removes and returns the park of channel id (the parked party
// hung up), or ErrNotParked.
func (s *Store) UnparkChannel(id string) (*Parked, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	p := parkedByChannelTxn(txn, id)
	if p == nil {
		return nil, ErrNotParked
	}
	if err := txn.Delete(TableParked, p); err != nil {
		return nil, fmt.Errorf("state: unpark: %w", err)
	}
	txn.Commit()
	s.notifyParked(p, false)
	return p.Copy(), nil
}

// UpdateParked applies fn to a copy of the park of channel id and stores
// it, in one transaction; fn may change only Due and Returns (the keys stay).
// Observers are not notified: nothing they show changes. It returns the
// updated copy, or ErrNotParked.
func (s *Store) UpdateParked(id string, fn func(p *Parked)) (*Parked, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	old := parkedByChannelTxn(txn, id)
	if old == nil {
		return nil, ErrNotParked
	}
	p := old.Copy()
	fn(p)
	p.Customer, p.Key, p.Channel = old.Customer, old.Key, old.Channel
	if err := txn.Insert(TableParked, p); err != nil {
		return nil, fmt.Errorf("state: update park: %w", err)
	}
	txn.Commit()
	return p.Copy(), nil
}

// Parked returns a copy of the call parked under key, or nil.
func (s *Store) Parked(customer, key string) *Parked {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return parkedTxn(txn, customer, key).Copy()
}

// ParkedByChannel returns a copy of the park of channel id, or nil.
func (s *Store) ParkedByChannel(id string) *Parked {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return parkedByChannelTxn(txn, id).Copy()
}

// ParkedList returns copies of the customer's parked calls, ordered by key.
func (s *Store) ParkedList(customer string) []*Parked {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return collectTxn[Parked](txn, TableParked, IndexCustomer, customer)
}

// ParkedCount returns the number of parked calls of every customer.
func (s *Store) ParkedCount() int {
	txn := s.db.Txn(false)
	defer txn.Abort()
	it, err := txn.Get(TableParked, IndexID)
	if err != nil {
		return 0
	}
	n := 0
	for o := it.Next(); o != nil; o = it.Next() {
		n++
	}
	return n
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
	txn := s.db.Txn(false)
	defer txn.Abort()
	free := func(n int) bool { return parkedTxn(txn, customer, RandomKey(strconv.Itoa(n))) == nil }
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
	r.Node = nodeKey(r.Node)
	txn := s.db.Txn(true)
	defer txn.Abort()
	if len(r.Contacts) == 0 {
		if _, err := txn.DeleteAll(TableRegistrations, IndexID, r.Customer, r.Account, r.Node); err != nil {
			return fmt.Errorf("state: delete registration: %w", err)
		}
	} else if err := txn.Insert(TableRegistrations, r); err != nil {
		return fmt.Errorf("state: upsert registration: %w", err)
	}
	txn.Commit()
	return nil
}

// Registration returns a copy of the contacts of an account through node,
// or nil.
func (s *Store) Registration(customer, account, node string) *Registration {
	txn := s.db.Txn(false)
	defer txn.Abort()
	o, err := txn.First(TableRegistrations, IndexID, customer, account, nodeKey(node))
	if err != nil || o == nil {
		return nil
	}
	r := o.(*Registration).Copy()
	r.Node = node
	return r
}

// DeleteRegistrationsVia forgets every registration through node (it is
// gone) and returns how many there were.
func (s *Store) DeleteRegistrationsVia(node string) int {
	txn := s.db.Txn(true)
	defer txn.Abort()
	var gone []*Registration
	it, err := txn.Get(TableRegistrations, IndexID)
	if err != nil {
		return 0
	}
	for o := it.Next(); o != nil; o = it.Next() {
		if r := o.(*Registration); r.Node == nodeKey(node) {
			gone = append(gone, r)
		}
	}
	for _, r := range gone {
		if err := txn.Delete(TableRegistrations, r); err != nil {
			return 0
		}
	}
	txn.Commit()
	return len(gone)
}

// nodeKey is how a node is indexed: memdb indexes no empty string.
func nodeKey(node string) string {
	if node == "" {
		return "-"
	}
	return node
}

// RegisteredVia returns the nodes an account has contacts registered
// through, sorted.
func (s *Store) RegisteredVia(customer, account string) []string {
	txn := s.db.Txn(false)
	defer txn.Abort()
	var nodes []string
	for _, r := range collectTxn[Registration](txn, TableRegistrations, IndexCustomer, customer) {
		if r.Account == account {
			if r.Node == "-" {
				r.Node = ""
			}
			nodes = append(nodes, r.Node)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// channelTxn returns the stored (shared, read-only) channel id, or nil.
func channelTxn(txn *memdb.Txn, id string) *Channel {
	if id == "" {
		return nil
	}
	o, err := txn.First(TableChannels, IndexID, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*Channel)
}

// parkedTxn returns the stored park under key, or nil.
func parkedTxn(txn *memdb.Txn, customer, key string) *Parked {
	if customer == "" || key == "" {
		return nil
	}
	o, err := txn.First(TableParked, IndexID, customer, key)
	if err != nil || o == nil {
		return nil
	}
	return o.(*Parked)
}

// parkedByChannelTxn returns the stored park of channel id, or nil.
func parkedByChannelTxn(txn *memdb.Txn, id string) *Parked {
	if id == "" {
		return nil
	}
	o, err := txn.First(TableParked, IndexChannel, id)
	if err != nil || o == nil {
		return nil
	}
	return o.(*Parked)
}

// copier is a stored type that copies itself.
type copier[T any] interface {
	*T
	Copy() *T
}

// collectTxn returns copies of the rows of table matching index and args.
func collectTxn[T any, P copier[T]](txn *memdb.Txn, table, index string, args ...any) []*T {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil
	}
	var out []*T
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, P(o.(*T)).Copy())
	}
	return out
}
