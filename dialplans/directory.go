package dialplans

import "net/netip"

// Directory answers the media core's questions (core.Directory) from the
// dialplan set in force: current is called on every question, so a reload
// takes effect at once.
type Directory struct{ current func() *Set }

// NewDirectory returns the Directory of the sets current returns.
func NewDirectory(current func() *Set) Directory { return Directory{current: current} }

// Account returns the customer and password of user@domain.
func (d Directory) Account(domain, user string) (string, string, bool) {
	cust, acct := d.current().Account(domain, user)
	if cust == nil || acct == nil {
		return "", "", false
	}
	return cust.Name, acct.Password, true
}

// Trunk returns the customer and trunk a call from src to dialed comes in through.
func (d Directory) Trunk(src netip.AddrPort, dialed string) (string, string, bool) {
	cust, t := d.current().TrunkFor(src, dialed)
	if cust == nil || t == nil {
		return "", "", false
	}
	return cust.Name, t.Name, true
}

// TrunkMatches reports whether src belongs to customer's trunk.
func (d Directory) TrunkMatches(customer, trunk string, src netip.AddrPort) bool {
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
func (d Directory) Domain(customer string) (string, bool) {
	cust := d.current().Customer(customer)
	if cust == nil {
		return "", false
	}
	return cust.Domain, true
}

// TrunkAuth returns the outbound credentials of customer's trunk.
func (d Directory) TrunkAuth(customer, trunk string) (string, string, bool) {
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
