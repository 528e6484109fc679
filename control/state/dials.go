package state

import "errors"

// Pending dials: an outbound leg the control plane had the core dial for
// another leg (For) and whose outcome it waits for: an extension call, an
// outside call, an automatic return or an API retrieval. The control plane
// names each dial (ID); the core puts the name on every event of the new
// leg, so the outcome finds its dial even when it outruns the dial's
// reply. A leg has at most one pending dial.
//
// The outcome is taken by exactly one transaction, whoever gets there
// first: the answer (AnswerDial, which also pairs the legs and, for a
// return, takes the call off parking), a failure, the leg dialed for
// going away, someone else retrieving the parked call, or the deadline
// (EndDial). A leg whose dial is no longer pending has nobody waiting for
// it: the control plane hangs it up.

// Purposes of a pending dial.
const (
	// DialExtension: an inbound leg rings an account.
	DialExtension = "extension"
	// DialOutside: an inbound leg calls an outside number through the
	// customer's Try-th outside trunk.
	DialOutside = "outside"
	// DialReturn: a call parked too long rings back its parker (or the
	// parker's forward_to when Forward); the park stays until the answer.
	DialReturn = "return"
	// DialRetrieval: an API retrieval rings a phone for a parked call
	// (claimed from parking; Park holds it to give back).
	DialRetrieval = "retrieval"
)

// Dial is one pending dial.
type Dial struct {
	// ID names the dial (primary key); events.Command.Dial and
	// events.Event.Dial carry it.
	ID string
	// For is the leg the dial is for: the caller, or the parked leg.
	For      string
	Customer string
	Purpose  string
	// Leg is the outbound leg, "" until the core names it.
	Leg string
	// Target is who is rung (an account, a URI), for logs and events.
	Target string
	// Number and Try: the outside number and the index of the trunk it
	// goes out through (DialOutside).
	Number string
	Try    int
	// Forward: a return rings the parker's forward_to (DialReturn).
	Forward bool
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

// AddDial records d, unless its For leg has a pending dial already.
func (s *Store) AddDial(d *Dial) error {
	if d.ID == "" || d.For == "" || d.Purpose == "" {
		return errors.New("state: a dial needs ID, For and Purpose")
	}
	cp := d.Copy()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t.dialsFor[d.For] != nil {
		return ErrDialPending
	}
	s.t.putDial(cp)
	return nil
}

// AdoptDialLeg names leg as the outbound leg of dial id, if it has none
// yet (or has that one), and returns the dial; nil when the dial is no
// longer pending or has another leg.
func (s *Store) AdoptDialLeg(id, leg string) *Dial {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.t.dials[id].Copy()
	if d == nil || (d.Leg != "" && d.Leg != leg) {
		return nil
	}
	if d.Leg == "" {
		d.Leg = leg
		s.t.putDial(d.Copy())
	}
	return d
}

// Dial returns a copy of pending dial id, or nil.
func (s *Store) Dial(id string) *Dial {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.dials[id].Copy()
}

// DialFor returns a copy of the dial pending for leg forLeg, or nil.
func (s *Store) DialFor(forLeg string) *Dial {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.dialsFor[forLeg].Copy()
}

// DialByLeg returns a copy of the pending dial whose outbound leg is leg,
// or nil.
func (s *Store) DialByLeg(leg string) *Dial {
	if leg == "" {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.t.dialsLeg[leg].Copy()
}

// EndDial removes and returns pending dial id: of any number of
// concurrent calls exactly one gets it, the others ErrNoDial.
func (s *Store) EndDial(id string) (*Dial, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.t.dials[id]
	if d == nil {
		return nil, ErrNoDial
	}
	s.t.delDial(d)
	return d.Copy(), nil
}

// AnswerDial is the answer of dial id by leg, in one transaction: the dial
// ends, and leg and the leg it was for become up and each other's peer; a
// return also takes the call off parking. Of the answer and anything else
// ending the dial (or, for a return, retrieving the call) exactly one
// wins. It returns the dial and, for a return, the park it ended.
// ErrNoDial: the dial was no longer pending (nothing changed).
// ErrNotParked: a return's call was retrieved or abandoned first (the dial
// ended, nothing else changed).
func (s *Store) AnswerDial(id, leg string) (*Dial, *Parked, error) {
	s.mu.Lock()
	d := s.t.dials[id]
	if d == nil {
		s.mu.Unlock()
		return nil, nil, ErrNoDial
	}
	s.t.delDial(d)
	var p *Parked
	if d.Purpose == DialReturn {
		if p = s.t.parkedBy[d.For]; p == nil {
			s.mu.Unlock()
			return d.Copy(), nil, ErrNotParked
		}
		s.t.delParked(p)
	}
	s.pairLocked(d.For, leg)
	s.mu.Unlock()
	if p != nil {
		s.notifyParked(p, false)
	}
	return d.Copy(), p.Copy(), nil
}

// DialCount is the number of pending dials.
func (s *Store) DialCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.t.dials)
}
