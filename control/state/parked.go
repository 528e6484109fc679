package state

import "errors"

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
	cp := p.Copy()
	s.mu.Lock()
	switch {
	case s.t.channels[p.Channel] == nil:
		s.mu.Unlock()
		return ErrNoChannel
	case s.t.parked[parkKey{p.Customer, p.Key}] != nil:
		s.mu.Unlock()
		return ErrNumberBusy
	case s.t.parkedBy[p.Channel] != nil:
		s.mu.Unlock()
		return ErrAlreadyParked
	}
	s.t.putParked(cp)
	s.mu.Unlock()
	s.notifyParked(p, true)
	return nil
}

// ClaimParked removes and returns the call parked under key. Of any number
// of concurrent claims of the same key exactly one gets the call; the others
// get ErrNotParked.
func (s *Store) ClaimParked(customer, key string) (*Parked, error) {
	s.mu.Lock()
	p := s.t.parked[parkKey{customer, key}]
	if p == nil {
		s.mu.Unlock()
		return nil, ErrNotParked
	}
	s.t.delParked(p)
	s.mu.Unlock()
	s.notifyParked(p, false)
	return p.Copy(), nil
}

// MoveParked moves the call parked under from to the spot of to (its
// Key, Kind, Number and Code; the rest stays, the wait's clock too), in one
// transaction: ErrNotParked if nothing is at from, ErrNumberBusy if to's
// key is taken. Observers see the call leave from, then arrive at to.
func (s *Store) MoveParked(customer, from string, to *Parked) (*Parked, error) {
	s.mu.Lock()
	old := s.t.parked[parkKey{customer, from}]
	if old == nil {
		s.mu.Unlock()
		return nil, ErrNotParked
	}
	if s.t.parked[parkKey{customer, to.Key}] != nil {
		s.mu.Unlock()
		return nil, ErrNumberBusy
	}
	p := old.Copy()
	p.Key, p.Kind, p.Number, p.Code = to.Key, to.Kind, to.Number, to.Code
	s.t.delParked(old)
	s.t.putParked(p)
	s.mu.Unlock()
	s.notifyParked(old, false)
	s.notifyParked(p, true)
	return p.Copy(), nil
}

// UnparkChannel removes and returns the park of channel id (the parked party
// hung up), or ErrNotParked.
func (s *Store) UnparkChannel(id string) (*Parked, error) {
	s.mu.Lock()
	p := s.t.parkedBy[id]
	if p == nil {
		s.mu.Unlock()
		return nil, ErrNotParked
	}
	s.t.delParked(p)
	s.mu.Unlock()
	s.notifyParked(p, false)
	return p.Copy(), nil
}

// UpdateParked applies fn to a copy of the park of channel id and stores
// it, in one transaction; fn may change only Due and Returns (the keys stay).
// Observers are not notified: nothing they show changes. It returns the
// updated copy, or ErrNotParked.
func (s *Store) UpdateParked(id string, fn func(p *Parked)) (*Parked, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.t.parkedBy[id]
	if old == nil {
		return nil, ErrNotParked
	}
	p := old.Copy()
	fn(p)
	p.Customer, p.Key, p.Channel = old.Customer, old.Key, old.Channel
	s.t.putParked(p)
	return p.Copy(), nil
}

// Parked returns a copy of the call parked under key, or nil.
func (s *Store) Parked(customer, key string) *Parked {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.parked[parkKey{customer, key}].Copy()
}

// ParkedByChannel returns a copy of the park of channel id, or nil.
func (s *Store) ParkedByChannel(id string) *Parked {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.parkedBy[id].Copy()
}

// ParkedList returns copies of the customer's parked calls, ordered by key.
func (s *Store) ParkedList(customer string) []*Parked {
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := s.t.parkedCust[customer]
	rows := make([]*Parked, 0, len(set))
	for _, p := range set {
		rows = append(rows, p)
	}
	return sortedCopies(rows, func(a, b *Parked) bool { return a.Key < b.Key })
}

// ParkedCount returns the number of parked calls of every customer.
func (s *Store) ParkedCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.t.parked)
}
