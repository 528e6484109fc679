package registrar

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

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
	ncValue                               uint32
}

// authenticate runs the digest check for an account user@domain; see
// Authenticate for what it answers.
func (r *Registrar) authenticate(req *sip.Request, tx sip.ServerTransaction, user, domain string) (Identity, bool) {
	realm := strings.ToLower(domain)
	if realm == "" || user == "" {
		r.respond(req, tx, sip.StatusBadRequest, "Missing user or domain in address")
		return Identity{}, false
	}
	now := r.now()
	creds, found, reason := findCredentials(req, realm)
	switch reason {
	case "":
	case ReasonUnsupported:
		// Offer again what we support.
		r.fail(reason, req, realm)
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	default:
		r.fail(reason, req, realm)
		r.respond(req, tx, sip.StatusBadRequest, "Malformed Authorization header")
		return Identity{}, false
	}
	if !found {
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	}
	if creds.username != user {
		r.fail(ReasonUsernameMismatch, req, realm)
		r.respond(req, tx, sip.StatusForbidden, "Forbidden")
		return Identity{}, false
	}
	dir := r.dir()
	if dir == nil {
		r.fail(ReasonNoDirectory, req, realm)
		r.respond(req, tx, sip.StatusServiceUnavailable, "Directory Not Loaded")
		return Identity{}, false
	}
	customer, password, ok := dir.Account(realm, user)
	if !ok {
		r.fail(ReasonUnknownUser, req, realm)
		r.respond(req, tx, sip.StatusForbidden, "Forbidden")
		return Identity{}, false
	}
	state, expires := r.nonces.check(now, creds.nonce, realm)
	if state == nonceInvalid {
		r.fail(ReasonInvalidNonce, req, realm)
		r.challenge(req, tx, now, realm, false)
		return Identity{}, false
	}
	if !digestMatches(creds, req.Method.String(), password) {
		if state == nonceStale {
			// RFC 7616 3.3: stale only when the digest itself was right.
			r.fail(ReasonStaleNonce, req, realm)
			r.challenge(req, tx, now, realm, false)
			return Identity{}, false
		}
		r.fail(ReasonBadPassword, req, realm)
		r.respond(req, tx, sip.StatusForbidden, "Forbidden")
		return Identity{}, false
	}
	if state == nonceStale {
		r.fail(ReasonStaleNonce, req, realm)
		r.challenge(req, tx, now, realm, true)
		return Identity{}, false
	}
	switch r.nonces.use(now, creds.nonce, expires, creds.ncValue, creds.qop != "") {
	case ncReplay:
		r.fail(ReasonReplay, req, realm)
		r.challenge(req, tx, now, realm, true)
		return Identity{}, false
	case ncFull:
		r.fail(ReasonNonceTableFull, req, realm)
		r.log.Warn("nonce table full", "max", r.opts.MaxNonces)
		r.challenge(req, tx, now, realm, true)
		return Identity{}, false
	}
	return Identity{Customer: customer, Account: user, Domain: realm}, true
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
	if c.username == "" || c.nonce == "" || c.uri == "" || len(c.response) != 2*md5.Size {
		return c, ReasonMalformed
	}
	if alg, ok := p["algorithm"]; ok && !strings.EqualFold(alg, "MD5") {
		return c, ReasonUnsupported
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

// digestMatches computes the expected response (RFC 2617 3.2.2.1, MD5) and
// compares it in constant time.
func digestMatches(c digestCreds, method, password string) bool {
	ha1 := md5hex(c.username, ":", c.realm, ":", password)
	ha2 := md5hex(method, ":", c.uri)
	var want string
	if c.qop == "" {
		want = md5hex(ha1, ":", c.nonce, ":", ha2)
	} else {
		want = md5hex(ha1, ":", c.nonce, ":", c.nc, ":", c.cnonce, ":", c.qop, ":", ha2)
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

// challenge answers 401 with a fresh nonce for realm.
func (r *Registrar) challenge(req *sip.Request, tx sip.ServerTransaction, now time.Time, realm string, stale bool) {
	v := "Digest realm=" + quote(realm) + `, nonce="` + r.nonces.issue(now, realm) + `", algorithm=MD5, qop="auth"`
	if stale {
		v += ", stale=true"
	}
	res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", v))
	r.send(tx, res)
}

func (r *Registrar) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	r.send(tx, sip.NewResponseFromRequest(req, code, reason, nil))
}

func (r *Registrar) send(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		r.log.Debug("respond failed", "status", res.StatusCode, "error", err)
	}
}

func (r *Registrar) fail(reason string, req *sip.Request, realm string) {
	r.log.Debug("authentication refused", "reason", reason, "method", req.Method.String(),
		"realm", realm, "source", req.Source())
	if r.opts.OnAuthFailure != nil {
		r.opts.OnAuthFailure(reason)
	}
}
