package state

// Connecting two legs: a retrieval or an automatic return ends with the
// parked leg and the leg that took it up, each the other's peer. Connect
// records that in one transaction; Retrieve (and AnswerDial for a return)
// also takes the call off parking in the same one, so that of a manual
// retrieval and an automatic return answering at once exactly one wins,
// and nobody ever sees a leg that is neither parked nor paired.

// Connect makes legs a and b up and each other's peer in one transaction.
// A leg already gone is skipped and reported as ErrNoChannel once the
// other is stored.
func (s *Store) Connect(a, b string) error {
	s.mu.Lock()
	missing := s.pairLocked(a, b)
	s.mu.Unlock()
	if missing {
		return ErrNoChannel
	}
	return nil
}

// Retrieve takes the call of channel parked off parking and connects it
// with leg, in one transaction. It returns the park it ended, or
// ErrNotParked (and changes nothing) when the call is no longer parked:
// someone else took it first, or it was abandoned.
func (s *Store) Retrieve(parked, leg string) (*Parked, error) {
	s.mu.Lock()
	p := s.t.parkedBy[parked]
	if p == nil {
		s.mu.Unlock()
		return nil, ErrNotParked
	}
	s.t.delParked(p)
	s.pairLocked(parked, leg)
	s.mu.Unlock()
	s.notifyParked(p, false)
	return p.Copy(), nil
}

// pairLocked stores a and b up, each the other's peer, with s.mu held;
// missing reports a leg that is gone.
func (s *Store) pairLocked(a, b string) (missing bool) {
	for _, ids := range [][2]string{{a, b}, {b, a}} {
		ch := s.t.channels[ids[0]].Copy()
		if ch == nil {
			missing = true
			continue
		}
		ch.State, ch.Peer = StateUp, ids[1]
		s.t.putChannel(ch)
	}
	return missing
}
