package state

import "sort"

// The tables and their indexes. Each table's put and del keep its indexes
// in step; nothing else touches the maps. All of it is guarded by
// Store.mu.
//
//	channels       one row per SIP leg, by the core's call id; indexed by
//	               customer and account (the legs of one phone: the caller's
//	               extension on inbound legs, the dialed account on outbound
//	               ones; trunk legs have none)
//	parked         one row per parked call, by customer and park key ("333",
//	               "*7250", "slot:1"); indexed by channel (a leg is parked at
//	               most once) and by customer
//	registrations  the contacts of each account registered through each
//	               node, by customer, account and node; indexed by customer
//	dials          pending dials, by id; indexed by the leg they are for
//	               (one each) and by their outbound leg
type tables struct {
	channels  map[string]*Channel
	byAccount map[accountKey]map[string]*Channel

	parked     map[parkKey]*Parked
	parkedBy   map[string]*Parked
	parkedCust map[string]map[string]*Parked

	regs     map[regKey]*Registration
	regsCust map[string]map[regKey]*Registration

	dials    map[string]*Dial
	dialsFor map[string]*Dial
	dialsLeg map[string]*Dial

	// The most rows each table held since its maps were made (see emptied).
	peakChannels, peakParked, peakDials int
}

type accountKey struct{ customer, account string }

type parkKey struct{ customer, key string }

type regKey struct{ customer, account, node string }

func newTables() tables {
	return tables{
		channels:   map[string]*Channel{},
		byAccount:  map[accountKey]map[string]*Channel{},
		parked:     map[parkKey]*Parked{},
		parkedBy:   map[string]*Parked{},
		parkedCust: map[string]map[string]*Parked{},
		regs:       map[regKey]*Registration{},
		regsCust:   map[string]map[regKey]*Registration{},
		dials:      map[string]*Dial{},
		dialsFor:   map[string]*Dial{},
		dialsLeg:   map[string]*Dial{},
	}
}

// putIndex and delIndex maintain a secondary index of sets.
func putIndex[K, I comparable, V any](ix map[K]map[I]V, k K, id I, v V) {
	set := ix[k]
	if set == nil {
		set = map[I]V{}
		ix[k] = set
	}
	set[id] = v
}

func delIndex[K, I comparable, V any](ix map[K]map[I]V, k K, id I) {
	if set := ix[k]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(ix, k)
		}
	}
}

// putChannel stores ch (the store's own copy) in place of any row of its id.
func (t *tables) putChannel(ch *Channel) {
	if old := t.channels[ch.ID]; old != nil && old.Account != "" {
		delIndex(t.byAccount, accountKey{old.Customer, old.Account}, old.ID)
	}
	t.channels[ch.ID] = ch
	t.peakChannels = max(t.peakChannels, len(t.channels))
	if ch.Account != "" {
		putIndex(t.byAccount, accountKey{ch.Customer, ch.Account}, ch.ID, ch)
	}
}

func (t *tables) delChannel(ch *Channel) {
	delete(t.channels, ch.ID)
	if ch.Account != "" {
		delIndex(t.byAccount, accountKey{ch.Customer, ch.Account}, ch.ID)
	}
	if len(t.channels) == 0 && t.peakChannels > emptiedAbove { // see emptied
		t.channels, t.byAccount = map[string]*Channel{}, map[accountKey]map[string]*Channel{}
		t.peakChannels = 0
	}
}

// emptied: a Go map keeps the room of its largest size, so a table that
// has just lost its last row, having held more than emptiedAbove rows,
// gets new maps (its indexes are empty too): a burst of thousands of
// calls leaves no room behind once it is over. A small table keeps its
// maps (no allocation each time the last call of a quiet office ends).
const emptiedAbove = 256

// putParked stores p in place of the row of its key; the caller has checked
// that its channel is parked nowhere else.
func (t *tables) putParked(p *Parked) {
	if old := t.parked[parkKey{p.Customer, p.Key}]; old != nil {
		t.delParked(old)
	}
	t.parked[parkKey{p.Customer, p.Key}] = p
	t.parkedBy[p.Channel] = p
	t.peakParked = max(t.peakParked, len(t.parked))
	putIndex(t.parkedCust, p.Customer, p.Key, p)
}

func (t *tables) delParked(p *Parked) {
	delete(t.parked, parkKey{p.Customer, p.Key})
	if t.parkedBy[p.Channel] == p {
		delete(t.parkedBy, p.Channel)
	}
	delIndex(t.parkedCust, p.Customer, p.Key)
	if len(t.parked) == 0 && len(t.parkedBy) == 0 && t.peakParked > emptiedAbove { // see emptied
		t.parked, t.parkedBy, t.parkedCust = map[parkKey]*Parked{}, map[string]*Parked{}, map[string]map[string]*Parked{}
		t.peakParked = 0
	}
}

func (t *tables) putReg(r *Registration) {
	k := regKey{r.Customer, r.Account, r.Node}
	t.regs[k] = r
	putIndex(t.regsCust, r.Customer, k, r)
}

func (t *tables) delReg(r *Registration) {
	k := regKey{r.Customer, r.Account, r.Node}
	delete(t.regs, k)
	delIndex(t.regsCust, r.Customer, k)
}

func (t *tables) putDial(d *Dial) {
	if old := t.dials[d.ID]; old != nil {
		t.delDial(old)
	}
	t.dials[d.ID] = d
	t.peakDials = max(t.peakDials, len(t.dials))
	t.dialsFor[d.For] = d
	if d.Leg != "" {
		t.dialsLeg[d.Leg] = d
	}
}

func (t *tables) delDial(d *Dial) {
	delete(t.dials, d.ID)
	if t.dialsFor[d.For] == d {
		delete(t.dialsFor, d.For)
	}
	if d.Leg != "" && t.dialsLeg[d.Leg] == d {
		delete(t.dialsLeg, d.Leg)
	}
	if len(t.dials) == 0 && len(t.dialsFor) == 0 && len(t.dialsLeg) == 0 && t.peakDials > emptiedAbove { // see emptied
		t.dials, t.dialsFor, t.dialsLeg = map[string]*Dial{}, map[string]*Dial{}, map[string]*Dial{}
		t.peakDials = 0
	}
}

// sortedCopies returns copies of the rows of a set, ordered by less.
func sortedCopies[T any, P interface {
	*T
	Copy() *T
}](rows []*T, less func(a, b *T) bool) []*T {
	out := make([]*T, 0, len(rows))
	for _, r := range rows {
		out = append(out, P(r).Copy())
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}
