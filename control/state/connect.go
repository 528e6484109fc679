package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

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
	txn := s.db.Txn(true)
	defer txn.Abort()
	missing, err := pairTxn(txn, a, b)
	if err != nil {
		return err
	}
	txn.Commit()
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
	txn := s.db.Txn(true)
	defer txn.Abort()
	p := parkedByChannelTxn(txn, parked)
	if p == nil {
		return nil, ErrNotParked
	}
	if err := txn.Delete(TableParked, p); err != nil {
		return nil, fmt.Errorf("state: retrieve: %w", err)
	}
	if _, err := pairTxn(txn, parked, leg); err != nil {
		return nil, err
	}
	txn.Commit()
	s.notifyParked(p, false)
	return p.Copy(), nil
}

// pairTxn stores a and b up, each the other's peer;
// missing reports a leg that is gone.
func pairTxn(txn *memdb.Txn, a, b string) (missing bool, err error) {
	for _, ids := range [][2]string{{a, b}, {b, a}} {
		ch := channelTxn(txn, ids[0]).Copy()
		if ch == nil {
			missing = true
			continue
		}
		ch.State, ch.Peer = StateUp, ids[1]
		if err := txn.Insert(TableChannels, ch); err != nil {
			return missing, fmt.Errorf("state: connect: %w", err)
		}
	}
	return missing, nil
}
