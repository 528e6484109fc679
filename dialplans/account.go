package dialplans

import (
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Permissions an account may hold.
const (
	PermPark        = "park"         // park calls (*70, *70N)
	PermRetrieve    = "retrieve"     // retrieve parked calls (*71, *71N, slots)
	PermCallControl = "call_control" // be driven through the call-control API
	PermOutside     = "outside"      // call outside numbers through the trunks
)

// Answering modes: what happens to a call for an account.
const (
	AnswerRing            = "ring"              // ring the account's phones
	AnswerForward         = "forward"           // forward straight to ForwardTo
	AnswerRingThenForward = "ring_then_forward" // ring, then forward to ForwardTo after the dial timeout
)

// Account is a phone user (SIP account) of a customer.
type Account struct {
	Extension     string // digits; also the SIP user name
	Name          string // display name
	Password      string // SIP digest password
	Permissions   []string
	AnsweringMode string
	ForwardTo     string // extension or number, for the forward modes
	// SRTP is the account's media encryption policy, SRTPOptional or
	// SRTPRequired; "" follows the customer's features.srtp.
	SRTP string
	Line int // line of the account in its file
}

// Can reports whether the account holds perm (PermPark, PermRetrieve or
// PermCallControl).
func (a *Account) Can(perm string) bool {
	return a != nil && slices.Contains(a.Permissions, perm)
}

var (
	allPerms = []string{PermPark, PermRetrieve, PermCallControl, PermOutside}
	numberRE = regexp.MustCompile(`^\+?[0-9]{1,20}$`)
	dialRE   = regexp.MustCompile(`^\+?[0-9*#]{1,32}$`)
)

const maxExtension = 15

func (d *decoder) account(n *yaml.Node) *Account {
	f, ok := d.mapping(n, "account", "extension", "name", "password", "permissions", "answering_mode", "forward_to", "srtp")
	if !ok {
		return nil
	}
	a := &Account{Line: n.Line}
	a.Extension = d.str(f, "extension", true)
	if a.Extension != "" && (!isDigits(a.Extension) || len(a.Extension) > maxExtension) {
		d.errorf(f.vals["extension"], "extension: %q must be 1 to %d digits", a.Extension, maxExtension)
		a.Extension = ""
	}
	a.Name = d.str(f, "name", false)
	a.Password = d.str(f, "password", true)

	if _, set := f.vals["permissions"]; !set {
		a.Permissions = []string{PermPark, PermRetrieve, PermOutside}
	} else {
		a.Permissions = []string{} // an explicit empty list means none
	}
	for _, pn := range d.seq(f, "permissions") {
		v := resolve(pn)
		if v == nil || v.Kind != yaml.ScalarNode {
			d.errorf(pn, "permissions: want a list of words")
			continue
		}
		switch {
		case !slices.Contains(allPerms, v.Value):
			d.errorf(v, "permissions: unknown permission %q (want %s)", v.Value, orList(allPerms))
		case slices.Contains(a.Permissions, v.Value):
			d.errorf(v, "permissions: %q listed twice", v.Value)
		default:
			a.Permissions = append(a.Permissions, v.Value)
		}
	}

	a.AnsweringMode = d.enum(f, "answering_mode", AnswerRing, AnswerRing, AnswerForward, AnswerRingThenForward)
	a.ForwardTo = d.str(f, "forward_to", false)
	a.SRTP = d.enum(f, "srtp", "", SRTPOptional, SRTPRequired)
	switch {
	case a.ForwardTo != "" && !dialRE.MatchString(a.ForwardTo):
		d.errorf(f.vals["forward_to"], "forward_to: %q is not an extension or number", a.ForwardTo)
	case a.ForwardTo != "" && a.ForwardTo == a.Extension:
		d.errorf(f.vals["forward_to"], "forward_to: account %s forwards to itself", a.Extension)
	case a.ForwardTo == "" && a.AnsweringMode != AnswerRing:
		d.errorf(f.line("answering_mode"), "answering_mode %s needs forward_to", a.AnsweringMode)
	}
	return a
}
