package registrar

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callpark/callpark/core/stateless"
	"github.com/emiago/sipgo/sip"
)

// Authenticate checks the digest credentials of an INVITE, REFER, SUBSCRIBE
// or other in-dialog-creating request. The realm is the host of the From URI
// and the digest username must be the From user. When it returns false it has
// already answered on tx: 401 with a challenge, 403, 400 for unusable
// credentials, or 503 when no directory is loaded.
func (r *Registrar) Authenticate(req *sip.Request, tx sip.ServerTransaction) (Identity, bool) {
	from := req.From()
	if from == nil {
		r.respond(req, tx, sip.StatusBadRequest, "Missing From header")
		return Identity{}, false
	}
	return r.authenticate(req, tx, from.Address.User, from.Address.Host)
}

// digestCreds are the fields of a Digest Authorization header we use.
type digestCreds struct {
	username, realm, nonce, uri, response string
	qop, nc, cnonce                       string
	algorithm                             string // MD5 or SHA-256
	ncValue                               uint32
}

// authenticate runs the digest check for an account user@domain; see
// Authenticate for what it answers.
//
// What goes back on the wire never tells a real account from an unknown one:
// the nonce is checked before the account is looked up, and an unknown user
// gets the same 403 (after the same hashing work) as a wrong password.
func (r *Registrar) authenticate(req *sip.Request, tx sip.ServerTransaction, user, domain string) (Identity, bool) {
	realm := strings.ToLower(domain)
	if realm == "" || user == "" {
		r.respond(req, tx, sip.StatusBadRequest, "Missing user or domain in address")
		return Identity{}, false
	}
	src := sourceAddr(req)
	account := realm + "/" + user
	now := r.now()
	dir := r.dir()
	if dir == nil {
		r.fail(ReasonNoDirectory, req, realm)
		r.respond(req, tx, sip.StatusServiceUnavailable, "Directory Not Loaded")
		return Identity{}, false
	}
	customer, password, known := dir.Account(realm, user)
	creds, found, reason := findCredentials(req, realm)
	switch reason {
	case "":
	case ReasonUnsupported:
		// Offer again what we support.
		r.failAuth(reason, req, realm, src, "")
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	default:
		r.failAuth(reason, req, realm, src, account)
		r.respond(req, tx, sip.StatusBadRequest, "Malformed Authorization header")
		return Identity{}, false
	}
	if found && !slices.Contains(r.algorithms(realm), creds.algorithm) {
		// An algorithm this realm does not offer: offer what it does.
		r.failAuth(ReasonUnsupported, req, realm, src, "")
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	}
	if !found {
		if !known {
			// A scanner walking extensions: answered like any other, counted.
			r.failAuth(ReasonUnknownUser, req, realm, src, "")
		}
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	}
	if creds.username != user {
		r.failAuth(ReasonUsernameMismatch, req, realm, src, account)
		r.respond(req, tx, sip.StatusForbidden, "Forbidden")
		return Identity{}, false
	}
	if !uriMatches(creds.uri, req.Recipient) && !r.isLocalURI(creds.uri) {
		r.failAuth(ReasonURIMismatch, req, realm, src, account)
		r.respond(req, tx, sip.StatusBadRequest, "Digest URI Does Not Match Request-URI")
		return Identity{}, false
	}
	if l := r.opts.Limiter; l != nil && src.IsValid() && l.Locked(account, src) {
		r.failAuth(ReasonLocked, req, realm, src, account)
		r.respond(req, tx, sip.StatusForbidden, "Forbidden")
		return Identity{}, false
	}
	state, id := r.nonces.check(now, creds.nonce, realm)
	if state == nonceInvalid {
		r.failAuth(ReasonInvalidNonce, req, realm, src, account)
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	}
	if !known {
		password = "\x00unknown" // hashed all the same: no timing tell
	}
	if !digestMatches(creds, req.Method.String(), password) || !known {
		if state == nonceStale && known {
			// RFC 7616 3.3: stale only when the digest itself was right.
			r.failAuth(ReasonStaleNonce, req, realm, src, "")
			r.challenge(req, tx, now, realm, false)
			return Identity{}, false
		}
		if known {
			r.failAuth(ReasonBadPassword, req, realm, src, account)
		} else {
			r.failAuth(ReasonUnknownUser, req, realm, src, "")
		}
		r.respond(req, tx, sip.StatusForbidden, "Forbidden")
		return Identity{}, false
	}
	if state == nonceStale {
		r.fail(ReasonStaleNonce, req, realm)
		r.challenge(req, tx, now, realm, true)
		return Identity{}, false
	}
	switch r.nonces.use(now, id, creds.ncValue, creds.qop != "") {
	case ncReplay:
		r.failAuth(ReasonReplay, req, realm, src, "")
		r.challenge(req, tx, now, realm, true)
		return Identity{}, false
	case ncFull:
		r.fail(ReasonNonceTableFull, req, realm)
		r.log.Warn("nonce table full", "max", r.opts.MaxNonces)
		r.challenge(req, tx, now, realm, true)
		return Identity{}, false
	}
	if l := r.opts.Limiter; l != nil && src.IsValid() {
		l.Succeed(src, account)
	}
	if r.opts.OnAuthenticated != nil {
		r.opts.OnAuthenticated(req)
	}
	return Identity{Customer: customer, Account: user, Domain: realm}, true
}

// isLocalURI reports whether a digest uri names this server itself
// (Options.LocalAddrs, no user part): what sipp and some UAs put there
// instead of the Request-URI. Nonce counts still stop a replay.
func (r *Registrar) isLocalURI(digestURI string) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil || u.User != "" {
		return false
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	hp := net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))
	for _, a := range r.opts.LocalAddrs {
		if strings.EqualFold(a, hp) {
			return true
		}
	}
	return false
}

// sourceAddr is the address a request came from (invalid if unknown).
func sourceAddr(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// uriMatches compares the digest-uri with the Request-URI (RFC 7616
// 3.4.6): a response computed for another URI is a captured one replayed.
func uriMatches(digestURI string, ruri sip.Uri) bool {
	var u sip.Uri
	if err := sip.ParseUri(digestURI, &u); err != nil {
		return false
	}
	port := func(p int) int {
		if p == 0 {
			return 5060
		}
		return p
	}
	return strings.EqualFold(u.Scheme, ruri.Scheme) && u.User == ruri.User &&
		strings.EqualFold(strings.Trim(u.Host, "[]"), strings.Trim(ruri.Host, "[]")) && port(u.Port) == port(ruri.Port)
}

// findCredentials picks the Digest credentials for realm from the
// Authorization and Proxy-Authorization headers. found is false when there
// are none for this realm; reason is set when the matching ones are unusable.
func findCredentials(req *sip.Request, realm string) (c digestCreds, found bool, reason string) {
	for _, name := range [...]string{"Authorization", "Proxy-Authorization"} {
		for _, h := range req.GetHeaders(name) {
			a, err := parseAuthorization(h.Value())
			if err != nil || !strings.EqualFold(a.scheme, "Digest") {
				continue // not something we can read: treat as absent
			}
			if !strings.EqualFold(a.params["realm"], realm) {
				continue // meant for another realm (RFC 3261 22.4)
			}
			c, reason = digestFrom(a.params)
			return c, true, reason
		}
	}
	return digestCreds{}, false, ""
}

// digestFrom validates Digest auth-params.
func digestFrom(p map[string]string) (digestCreds, string) {
	c := digestCreds{
		username: p["username"],
		realm:    p["realm"],
		nonce:    p["nonce"],
		uri:      p["uri"],
		response: strings.ToLower(p["response"]),
		qop:      p["qop"],
		nc:       p["nc"],
		cnonce:   p["cnonce"],
	}
	c.algorithm = "MD5"
	if alg, ok := p["algorithm"]; ok {
		switch {
		case strings.EqualFold(alg, "MD5"):
		case strings.EqualFold(alg, "SHA-256"):
			c.algorithm = "SHA-256"
		default:
			return c, ReasonUnsupported
		}
	}
	size := md5.Size
	if c.algorithm == "SHA-256" {
		size = sha256.Size
	}
	if c.username == "" || c.nonce == "" || c.uri == "" || len(c.response) != 2*size {
		return c, ReasonMalformed
	}
	switch {
	case c.qop == "":
		if c.nc != "" || c.cnonce != "" {
			return c, ReasonMalformed
		}
	case strings.EqualFold(c.qop, "auth"):
		if c.cnonce == "" || len(c.nc) == 0 || len(c.nc) > 8 {
			return c, ReasonMalformed
		}
		n, err := strconv.ParseUint(c.nc, 16, 32)
		if err != nil || n == 0 {
			return c, ReasonMalformed
		}
		c.ncValue = uint32(n)
	default:
		return c, ReasonUnsupported
	}
	return c, ""
}

// digestMatches computes the expected response (RFC 7616 3.4.1: MD5, or
// SHA-256 as RFC 8760 brings to SIP) and compares it in constant time.
func digestMatches(c digestCreds, method, password string) bool {
	h := md5hex
	if c.algorithm == "SHA-256" {
		h = sha256hex
	}
	ha1 := h(c.username, ":", c.realm, ":", password)
	ha2 := h(method, ":", c.uri)
	var want string
	if c.qop == "" {
		want = h(ha1, ":", c.nonce, ":", ha2)
	} else {
		want = h(ha1, ":", c.nonce, ":", c.nc, ":", c.cnonce, ":", c.qop, ":", ha2)
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(c.response)) == 1
}

func md5hex(parts ...string) string {
	h := md5.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	var sum [md5.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

func sha256hex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

var bothAlgorithms = []string{"MD5", "SHA-256"}

// algorithms are the digest algorithms offered to realm.
func (r *Registrar) algorithms(realm string) []string {
	if r.opts.Algorithms != nil {
		if algs := r.opts.Algorithms(realm); len(algs) > 0 {
			return algs
		}
	}
	return bothAlgorithms
}

// challenge answers 401 with a fresh nonce for realm.
func (r *Registrar) challenge(req *sip.Request, tx sip.ServerTransaction, now time.Time, realm string, stale bool) {
	nonce := r.nonces.issue(now, realm)
	res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
	// MD5 first: many phones (and sipp, sipvicious) read only the first
	// challenge; RFC 8760 clients pick SHA-256 from the second.
	for _, alg := range r.algorithms(realm) {
		v := "Digest realm=" + quote(realm) + `, nonce="` + nonce + `", algorithm=` + alg + `, qop="auth"`
		if stale {
			v += ", stale=true"
		}
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", v))
	}
	r.send(req, tx, res)
}

func (r *Registrar) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	r.send(req, tx, sip.NewResponseFromRequest(req, code, reason, nil))
}

// send answers req on tx; a refusal (a challenge too) statelessly: once,
// keeping nothing (see package stateless).
func (r *Registrar) send(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	var err error
	if res.StatusCode >= 300 {
		err = stateless.Respond(req, tx, res)
	} else {
		err = tx.Respond(res)
	}
	if err != nil {
		r.log.Debug("respond failed", "status", res.StatusCode, "error", err)
	}
}

// failAuth records a refused authentication, and counts it against the
// source address and (when not "") the account with the Limiter.
func (r *Registrar) failAuth(reason string, req *sip.Request, realm string, src netip.Addr, account string) {
	r.fail(reason, req, realm)
	if l := r.opts.Limiter; l != nil && src.IsValid() {
		l.Fail(src, account)
	}
}

func (r *Registrar) fail(reason string, req *sip.Request, realm string) {
	r.log.Debug("authentication refused", "reason", reason, "method", req.Method.String(),
		"realm", realm, "source", req.Source())
	if r.opts.OnAuthFailure != nil {
		r.opts.OnAuthFailure(reason)
	}
}
