package core

import "net/netip"

// Directory is what the core knows of the customers it serves: who may
// register and call, which trunks send calls, and each customer's SIP
// domain. The application supplies it (pbx adapts the dialplans); the core
// never reads the application's rules itself.
type Directory interface {
	// Account returns the customer and plain password of user@domain.
	Account(domain, user string) (customer, password string, ok bool)
	// Trunk identifies the customer and trunk a request from src for the
	// dialed user comes in through.
	Trunk(src netip.AddrPort, dialed string) (customer, trunk string, ok bool)
	// TrunkMatches reports whether src belongs to the customer's trunk.
	TrunkMatches(customer, trunk string, src netip.AddrPort) bool
	// Domain returns the customer's SIP domain.
	Domain(customer string) (string, bool)
	// TrunkAuth returns the digest credentials a customer's trunk answers
	// a carrier's challenge with (ok false: none).
	TrunkAuth(customer, trunk string) (username, password string, ok bool)
	// DigestAlgorithms lists the digest algorithms the phones of the
	// customer with SIP domain are challenged with (nil: MD5 and SHA-256).
	DigestAlgorithms(domain string) []string
	// SRTPRequired reports whether the account's calls must be SRTP over
	// TLS (tls.go).
	SRTPRequired(customer, account string) bool
	// TrunkRegistrations lists the trunks that register to their carrier
	// (asked again every second: a reload takes effect).
	TrunkRegistrations() []TrunkRegistration
	// Finishing reports whether a new call from a phone of domain to
	// dialed takes a call off the PBX's books (a retrieval, a park)
	// rather than starts a conversation: under overload such a call
	// passes the soft limits (admission.go).
	Finishing(domain, dialed string) bool
}
