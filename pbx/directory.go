package pbx

import (
	"net/netip"

	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/dialplans"
)

// directory answers the media core's questions (core.Directory) from the
// dialplan set in force: current is called on every question, so a reload
// takes effect at once.
type directory struct{ current func() *dialplans.Set }

// Account returns the customer and password of user@domain.
func (d directory) Account(domain, user string) (string, string, bool) {
	cust, acct := d.current().Account(domain, user)
	if cust == nil || acct == nil {
		return "", "", false
	}
	return cust.Name, acct.Password, true
}

// Trunk returns the customer and trunk a call from src to dialed comes in through.
func (d directory) Trunk(src netip.AddrPort, dialed string) (string, string, bool) {
	cust, t := d.current().TrunkFor(src, dialed)
	if cust == nil || t == nil {
		return "", "", false
	}
	return cust.Name, t.Name, true
}

// TrunkMatches reports whether src belongs to customer's trunk.
func (d directory) TrunkMatches(customer, trunk string, src netip.AddrPort) bool {
	cust := d.current().Customer(customer)
	if cust == nil {
		return false
	}
	for _, t := range cust.Trunks {
		if t.Name == trunk && t.Matches(src) {
			return true
		}
	}
	return false
}

// Domain returns customer's SIP domain.
func (d directory) Domain(customer string) (string, bool) {
	cust := d.current().Customer(customer)
	if cust == nil {
		return "", false
	}
	return cust.Domain, true
}

// TrunkAuth returns the outbound credentials of customer's trunk.
func (d directory) TrunkAuth(customer, trunk string) (string, string, bool) {
	cust := d.current().Customer(customer)
	if cust == nil {
		return "", "", false
	}
	for _, t := range cust.Trunks {
		if t.Name == trunk && t.Username != "" {
			return t.Username, t.Password, true
		}
	}
	return "", "", false
}

// DigestAlgorithms lists the digest algorithms of the customer with domain.
func (d directory) DigestAlgorithms(domain string) []string {
	if cust := d.current().CustomerByDomain(domain); cust != nil {
		return cust.Features.Digest.Algorithms()
	}
	return nil
}

// SRTPRequired reports whether customer's account must use SRTP.
func (d directory) SRTPRequired(customer, account string) bool {
	cust := d.current().Customer(customer)
	if cust == nil {
		return false
	}
	return cust.SRTPRequired(cust.Account(account))
}

// TrunkRegistrations lists the trunks that register to their carrier.
func (d directory) TrunkRegistrations() []core.TrunkRegistration {
	var out []core.TrunkRegistration
	for _, c := range d.current().Customers() {
		for _, t := range c.Trunks {
			ap, ok := t.Target()
			if !t.Register || !ok {
				continue
			}
			out = append(out, core.TrunkRegistration{Customer: c.Name, Trunk: t.Name, Registrar: ap.String(),
				User: t.Username, Username: t.Username, Password: t.Password, Expiry: t.RegisterExpiry})
		}
	}
	return out
}

// Finishing reports whether a phone of domain dialing dialed parks or
// retrieves a call (core.Directory).
func (d directory) Finishing(domain, dialed string) bool {
	return d.current().CustomerByDomain(domain).Route(dialed).Kind.Finishing()
}
