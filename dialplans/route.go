package dialplans

import (
	"fmt"
	"strings"
)

// RouteKind says what a dialed string asks for.
type RouteKind int

// Route kinds.
const (
	RouteNone           RouteKind = iota // nothing the customer's dialplan knows
	RouteExtension                       // call an account (Number is its extension)
	RoutePark                            // park on Number (Park+N); check ParkNumberAllowed
	RouteParkRandom                      // park on a random number (Park)
	RouteRetrieve                        // retrieve the call parked on Number (Release+N)
	RouteRetrieveOwn                     // retrieve the caller's own parked call (Release)
	RouteRetrieveRandom                  // retrieve the call parked on random Number (Release+"*"+N)
	RouteSlot                            // retrieve the call parked on slot Number (SlotRelease+N)
	RouteOutside                         // call Number outside, through the customer's trunks
)

var routeKindNames = [...]string{"none", "extension", "park", "park-random", "retrieve", "retrieve-own", "retrieve-random", "slot", "outside"}

func (k RouteKind) String() string {
	if k >= 0 && int(k) < len(routeKindNames) {
		return routeKindNames[k]
	}
	return fmt.Sprintf("RouteKind(%d)", int(k))
}

// Finishing reports whether a call routed so takes a call off the PBX's
// books instead of starting a conversation: a park hands over a call the
// PBX carries already, a retrieval ends a parked one.
func (k RouteKind) Finishing() bool {
	switch k {
	case RoutePark, RouteParkRandom, RouteRetrieve, RouteRetrieveOwn, RouteRetrieveRandom, RouteSlot:
		return true
	}
	return false
}

// Route is what a dialed string means for a customer.
type Route struct {
	Kind   RouteKind
	Number string // extension, park number or slot; empty for RouteParkRandom, RouteRetrieveOwn and RouteNone
}

// String is for logs: "park 333", "retrieve-own", "extension 200".
func (r Route) String() string {
	if r.Number == "" {
		return r.Kind.String()
	}
	return r.Kind.String() + " " + r.Number
}

// Route says what dialed means for the customer, using its rule's codes.
// With the default codes:
//
//	*70        park on a random number      *71        retrieve own parked call
//	*70333     park on 333                  *71333     retrieve 333
//	*71*7250   retrieve random number 7250  7112345    retrieve slot 12345
//	200        extension 200                +15551230000  the DID's extension
//
// A code dialed alone wins over everything; then an account extension or a
// DID; then the longest code that dialed starts with and whose remainder is
// valid (digits; for slots, a configured slot). Route only reads the dial
// plan: the caller checks Features.Parking, the caller's permissions and,
// for RoutePark, ParkNumberAllowed.
// A Customer not yet tied to a rule (from Parse) routes with the default
// codes.
func (c *Customer) Route(dialed string) Route {
	if c == nil || dialed == "" {
		return Route{}
	}
	r := c.Rule
	if r == nil {
		r = &Rule{Park: DefaultPark, Release: DefaultRelease, SlotRelease: DefaultSlotRelease}
	}
	switch dialed {
	case r.Park:
		return Route{Kind: RouteParkRandom}
	case r.Release:
		return Route{Kind: RouteRetrieveOwn}
	}
	if c.Accounts[dialed] != nil {
		return Route{Kind: RouteExtension, Number: dialed}
	}
	if ext, ok := c.DIDs[dialed]; ok {
		return Route{Kind: RouteExtension, Number: ext}
	}

	best, bestLen := Route{}, -1
	try := func(prefix string, kind RouteKind) {
		if len(prefix) <= bestLen || !strings.HasPrefix(dialed, prefix) {
			return
		}
		rest := dialed[len(prefix):]
		if !isDigits(rest) || (kind == RouteSlot && c.Slots[rest] == nil) {
			return
		}
		best, bestLen = Route{Kind: kind, Number: rest}, len(prefix)
	}
	try(r.Park, RoutePark)
	try(r.Release, RouteRetrieve)
	try(r.Release+"*", RouteRetrieveRandom)
	try(r.SlotRelease, RouteSlot)
	if best.Kind == RouteNone {
		if n, ok := c.outsideNumber(dialed); ok {
			return Route{Kind: RouteOutside, Number: n}
		}
	}
	return best
}

// outsideNumber normalises a dialed outside number: "+<digits>" as it is;
// after the outside prefix, "00<digits>" becomes "+<digits>" and anything
// else stays as dialed (a national number the carrier understands).
func (c *Customer) outsideNumber(dialed string) (string, bool) {
	valid := func(n string) bool { return isDigits(n) && len(n) >= 3 && len(n) <= 20 }
	if rest, ok := strings.CutPrefix(dialed, "+"); ok {
		return dialed, valid(rest)
	}
	p := c.Features.OutsidePrefix
	rest, ok := strings.CutPrefix(dialed, p)
	if p == "" || !ok || !valid(rest) {
		return "", false
	}
	if intl, ok := strings.CutPrefix(rest, "00"); ok && valid(intl) {
		return "+" + intl, true
	}
	return rest, true
}
