package console

import (
	"net/http"
	"slices"
	"time"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// Board is everything the page shows, as of Now.
type Board struct {
	Customer string    `json:"customer"`
	Me       *Me       `json:"me"`
	Now      time.Time `json:"now"`
	// ReturnAfter is the customer's automatic-return delay in seconds
	// (0: off), for the countdowns' colours.
	ReturnAfter float64     `json:"return_after_s"`
	Slots       []Slot      `json:"slots"`
	Parked      []Parked    `json:"parked"` // on extensions and random numbers
	Extensions  []Extension `json:"extensions"`
	MyCalls     []Call      `json:"my_calls"`
}

// Me is the signed-in account.
type Me struct {
	Account string `json:"account,omitempty"`
	Name    string `json:"name,omitempty"`
	Control bool   `json:"control"`
	CSRF    string `json:"csrf"`
}

// Slot is one parking slot.
type Slot struct {
	Slot   string  `json:"slot"`
	Label  string  `json:"label,omitempty"`
	Code   string  `json:"code"` // dial code of the slot's BLF key
	Parked *Parked `json:"parked,omitempty"`
}

// Parked is one parked call.
type Parked struct {
	Kind   string       `json:"kind"`
	Number string       `json:"number"`
	Code   string       `json:"code"`
	Caller events.Party `json:"caller"`
	Parker string       `json:"parker,omitempty"`
	Since  time.Time    `json:"since"`
	Due    *time.Time   `json:"due,omitempty"`
	// ReturnTo is who the automatic return rings (the parker).
	ReturnTo string `json:"return_to,omitempty"`
}

// Extension is one of the customer's accounts and what its phone does.
type Extension struct {
	Extension string `json:"extension"`
	Name      string `json:"name,omitempty"`
	// State: idle, ringing, in_call, on_hold, parked (the phone's own
	// call waits in parking), parked_on (a call waits on this extension's
	// number).
	State string       `json:"state"`
	Party events.Party `json:"party,omitzero"`
}

// Call is one of the signed-in account's legs.
type Call struct {
	CallID    string       `json:"call_id"`
	State     string       `json:"state"`
	Direction string       `json:"direction"`
	Party     events.Party `json:"party"`
	Since     time.Time    `json:"since"`
}

func (s *Server) getBoard(w http.ResponseWriter, _ *http.Request, x *session) {
	b, err := s.board(x)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, b)
}

// board builds x's board from the control plane's state.
func (s *Server) board(x *session) (*Board, error) {
	cust := s.customer(x)
	if cust == nil {
		return nil, control.ErrNotFound
	}
	b := &Board{Customer: cust.Name, Now: s.cfg.Now().UTC(),
		Me:         &Me{Account: x.account, Name: x.name, Control: x.control, CSRF: x.csrf},
		Slots:      []Slot{},
		Parked:     []Parked{},
		Extensions: []Extension{},
		MyCalls:    []Call{},
	}
	if ar := cust.Features.AutoRetrieve; ar.Enabled {
		b.ReturnAfter = ar.After.Seconds()
	}
	slots, err := s.cfg.Control.Slots(cust.Name)
	if err != nil {
		return nil, err
	}
	for _, st := range slots {
		sl := Slot{Slot: st.Slot.Number, Label: st.Slot.Label, Code: slotCode(cust, st.Slot.Number)}
		if st.Parked != nil {
			p := parked(st.Parked)
			sl.Parked = &p
		}
		b.Slots = append(b.Slots, sl)
	}
	all, err := s.cfg.Control.Parked(cust.Name)
	if err != nil {
		return nil, err
	}
	parkedOn := map[string]bool{}
	for _, p := range all {
		if p.Kind == state.KindSlot {
			continue
		}
		if p.Kind == state.KindExtension {
			parkedOn[p.Number] = true
		}
		b.Parked = append(b.Parked, parked(p))
	}
	for _, a := range cust.Accounts {
		e := Extension{Extension: a.Extension, Name: a.Name, State: "idle"}
		if parkedOn[a.Extension] {
			e.State = "parked_on"
		}
		calls, _ := s.cfg.Control.Calls(cust.Name, a.Extension)
		if len(calls) > 0 {
			e.State, e.Party = extState(calls), party(calls[0])
		}
		b.Extensions = append(b.Extensions, e)
		if a.Extension == x.account {
			for _, c := range calls {
				b.MyCalls = append(b.MyCalls, Call{CallID: c.Leg.ID, State: c.Leg.State, Direction: c.Leg.Direction, Party: party(c), Since: c.Leg.Created.UTC()})
			}
		}
	}
	slices.SortFunc(b.Extensions, func(p, q Extension) int { return compareNumbers(p.Extension, q.Extension) })
	return b, nil
}

// extState sums up an account's legs: a call up beats one held beats one
// waiting in parking beats one ringing.
func extState(calls []control.Call) string {
	rank := map[string]int{"ringing": 0, "parked": 1, "on_hold": 2, "in_call": 3}
	st := "ringing"
	for _, c := range calls {
		s := "ringing"
		switch c.Leg.State {
		case state.StateUp:
			s = "in_call"
		case state.StateHeld:
			s = "on_hold"
		case state.StateParked:
			s = "parked"
		}
		if rank[s] > rank[st] {
			st = s
		}
	}
	return st
}

// party is the other end of an account's call.
func party(c control.Call) events.Party {
	switch {
	case c.Peer != nil:
		return c.Peer.Party()
	case c.Leg.Direction == events.Outbound:
		return c.Leg.From
	default:
		return c.Leg.To
	}
}

func parked(p *state.Parked) Parked {
	out := Parked{Kind: p.Kind, Number: p.Number, Code: p.Code, Caller: p.Party, Parker: p.Parker, Since: p.Since.UTC()}
	if !p.Due.IsZero() {
		due := p.Due.UTC()
		out.Due = &due
		out.ReturnTo = p.Parker
	}
	return out
}

// compareNumbers orders digit strings numerically.
func compareNumbers(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// slotCode is what a phone dials to pick up slot n (the BLF key's code).
func slotCode(cust *dialplans.Customer, n string) string {
	if cust.Rule == nil {
		return n
	}
	return cust.Rule.SlotRelease + n
}
