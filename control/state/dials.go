package state

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Pending dials: an outbound leg the control plane had the core dial for
// another leg and whose outcome it waits for. A row is keyed by the leg
// dialed for (For: one pending dial per leg), so it exists before the
// core names the new leg; the first event of an outbound leg dialed for
// For names it (AdoptDialLeg). The outcome is taken by exactly one
// EndDial, whoever sees it first: the answer, a failure, the caller
// hanging up, or the deadline.

// Purposes of a pending dial.
const (
	// DialRetrieval: an API retrieval rings a phone for a parked call
	// (claimed from parking; Park holds it to give back).
	DialRetrieval = "retrieval"
)

// Dial is one pending dial.
type Dial struct {
	// For is the leg the dial is for (primary key).
	For      string
	Customer string
	Purpose  string
	// Leg is the outbound leg, "" until the core names it.
	Leg string
	// Target is who is rung (an account, a URI), for logs and events.
	Target string
	// Park is the parked call a retrieval took off parking.
	Park *Parked
}

// Copy returns a copy of d (its Park copied too).
func (d *Dial) Copy() *Dial {
	if d == nil {
		return nil
	}
	cp := *d
	cp.Park = d.Park.Copy()
	return &cp
}

// ErrNoDial: no such pending dial (ended already, or never was).
var ErrNoDial = errors.New("state: no such pending dial")

// ErrDialPending: the leg already has a pending dial.
var ErrDialPending = errors.New("state: a dial is already pending for the leg")

const (
	// TableDials holds the pending dials.
	TableDials = "dials"
	// IndexLeg indexes dials by their outbound leg.
	IndexLeg = "leg"
)

func dialsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableDials,
		Indexes: map[string]*memdb.IndexSchema{
			IndexID: {
				Name:    IndexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "For"},
			},
			IndexLeg: {
				Name:         IndexLeg,
				AllowMissing: true,
				Indexer:      &memdb.StringFieldIndex{Field: "Leg"},
			},
		},
	}
}

// AddDial records d, unless its For leg has a pending dial already.
func (s *Store) AddDial(d *Dial) error {
	if d.For == "" || d.Purpose == "" {
		return errors.New("state: a dial needs For and Purpose")
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	if dialTxn(txn, d.For) != nil {
		return ErrDialPending
	}
	if err := txn.Insert(TableDials, d.Copy()); err != nil {
		return fmt.Errorf("state: add dial: %w", err)
	}
	txn.Commit()
	return nil
}

// AdoptDialLeg names leg as the outbound leg of the dial pending for
// forLeg, if it has none yet (or has that one), and returns the dial; nil
// when there is no such dial or it has another leg.
func (s *Store) AdoptDialLeg(forLeg, leg string) *Dial {
	txn := s.db.Txn(true)
	defer txn.Abort()
	d := dialTxn(txn, forLeg).Copy()
	if d == nil || (d.Leg != "" && d.Leg != leg) {
		return nil
	}
	if d.Leg == "" {
		d.Leg = leg
		if err := txn.Insert(TableDials, d.Copy()); err != nil {
			return nil
		}
		txn.Commit()
	}
	return d
}

// DialFor returns a copy of the dial pending for leg forLeg, or nil.
func (s *Store) DialFor(forLeg string) *Dial {
	txn := s.db.Txn(false)
	defer txn.Abort()
	return dialTxn(txn, forLeg).Copy()
}

// DialByLeg returns a copy of the pending dial whose outbound leg is leg,
// or nil.
func (s *Store) DialByLeg(leg string) *Dial {
	if leg == "" {
		return nil
	}
	txn := s.db.Txn(false)
	defer txn.Abort()
	raw, err := txn.First(TableDials, IndexLeg, leg)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Dial).Copy()
}

// EndDial removes and returns the dial pending for forLeg: of any number
// of concurrent calls exactly one gets it, the others ErrNoDial.
func (s *Store) EndDial(forLeg string) (*Dial, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	d := dialTxn(txn, forLeg)
	if d == nil {
		return nil, ErrNoDial
	}
	if err := txn.Delete(TableDials, d); err != nil {
		return nil, fmt.Errorf("state: end dial: %w", err)
	}
	txn.Commit()
	return d.Copy(), nil
}

// DialCount is the number of pending dials.
func (s *Store) DialCount() int {
	txn := s.db.Txn(false)
	defer txn.Abort()
	it, err := txn.Get(TableDials, IndexID)
	if err != nil {
		return 0
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n
}

func dialTxn(txn *memdb.Txn, forLeg string) *Dial {
	if forLeg == "" {
		return nil
	}
	raw, err := txn.First(TableDials, IndexID, forLeg)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Dial)
}
