package core

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/callpark/callpark/core/stateless"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Ingress is the one door every SIP request passes before any handler of
// the core (dispatch.go): it validates what RFC 3261 makes mandatory and
// recovers from a panic in whatever runs behind it, so one packet can never
// take the process (and every other call) down.

// maxBody bounds a request's body; SDP offers are a few hundred bytes.
const maxBody = 16 << 10

// singletons are headers a request may carry only once (RFC 3261 7.3.1,
// 20: From, To, Call-ID, CSeq, Max-Forwards and Content-Length are not lists).
var singletons = [...]string{"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type"}

// validateRequest checks what every request must have before any handler
// may read it. It returns 0 when the request is sound, else the status and
// reason to answer with and a short label for the metric.
func validateRequest(req *sip.Request) (code int, reason, label string) {
	if req.Recipient.Host == "" {
		return sip.StatusBadRequest, "Bad Request-URI", "request_uri"
	}
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel", "":
	default:
		return 416, "Unsupported URI Scheme", "uri_scheme"
	}
	if req.Via() == nil {
		return sip.StatusBadRequest, "Missing Via", "missing_via"
	}
	from, to, callID, cseq := req.From(), req.To(), req.CallID(), req.CSeq()
	switch {
	case from == nil:
		return sip.StatusBadRequest, "Missing From", "missing_from"
	case to == nil:
		return sip.StatusBadRequest, "Missing To", "missing_to"
	case callID == nil || strings.TrimSpace(callID.Value()) == "":
		return sip.StatusBadRequest, "Missing Call-ID", "missing_call_id"
	case cseq == nil:
		return sip.StatusBadRequest, "Missing CSeq", "missing_cseq"
	}
	if cseq.MethodName != req.Method {
		return sip.StatusBadRequest, "CSeq Method Does Not Match", "cseq_method"
	}
	if from.Address.Host == "" || to.Address.Host == "" {
		return sip.StatusBadRequest, "Malformed From or To", "bad_address"
	}
	if name := duplicateSingleton(req); name != "" {
		return sip.StatusBadRequest, "Duplicate " + canonical(name), "duplicate_header"
	}
	mf := req.MaxForwards()
	if mf == nil {
		return sip.StatusBadRequest, "Missing Max-Forwards", "missing_max_forwards"
	}
	if mf.Val() == 0 && req.Method != sip.OPTIONS && req.Method != sip.ACK {
		return sip.StatusTooManyHops, "Too Many Hops", "too_many_hops"
	}
	body := req.Body()
	if len(body) > maxBody {
		return sip.StatusRequestEntityTooLarge, "Request Entity Too Large", "too_large"
	}
	if cl := req.ContentLength(); cl != nil && int(*cl) != len(body) {
		return sip.StatusBadRequest, "Content-Length Does Not Match Body", "content_length"
	}
	if len(body) > 0 && req.ContentType() == nil {
		return sip.StatusBadRequest, "Body Without Content-Type", "content_type"
	}
	return 0, "", ""
}

// duplicateSingleton is the first of singletons req carries twice, or "":
// one pass over the headers, no lookups (each GetHeaders made a slice).
func duplicateSingleton(req *sip.Request) string {
	var seen [len(singletons)]bool
	for _, h := range req.Headers() {
		name := h.Name()
		for i, s := range singletons {
			if len(name) == len(s) && strings.EqualFold(name, s) {
				if seen[i] {
					return s
				}
				seen[i] = true
				break
			}
		}
	}
	return ""
}

func canonical(lower string) string {
	parts := strings.Split(lower, "-")
	for i, p := range parts {
		if p == "cseq" {
			parts[i] = "CSeq"
			continue
		}
		if p == "id" {
			parts[i] = "ID"
			continue
		}
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "-")
}

// guard wraps a handler with the ingress checks and a recover. A request
// that fails validation is answered (an ACK is dropped: RFC 3261 17.2.3
// never answers one) and counted; a panic behind it answers 500, logs one
// stack (rate-limited) and leaves every other call alone.
func (c *Core) guard(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		rt := &trackedTx{ServerTransaction: tx}
		defer func() {
			if v := recover(); v != nil {
				c.metrics.panics.Inc()
				c.noisy.Warn("panic handling SIP request", "method", req.Method.String(),
					"source", req.Source(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if req.Method != sip.ACK && !rt.answered.Load() {
					_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusInternalServerError, "Server Internal Error", nil))
				}
			}
		}()
		if code, reason, label := validateRequest(req); code != 0 {
			c.reject(req, tx, code, reason, label)
			return
		}
		next(req, rt)
	}
}

// reject answers an invalid request (never an ACK) and counts it. The
// answer is stateless (package stateless): once, keeping nothing.
func (c *Core) reject(req *sip.Request, tx sip.ServerTransaction, code int, reason, label string) {
	c.metrics.badRequests.WithLabelValues(label).Inc()
	c.noisy.Warn("SIP request refused", "reason", label, "method", req.Method.String(),
		"source", req.Source(), "start", truncate(req.StartLine(), 200))
	if req.Method == sip.ACK {
		return
	}
	_ = stateless.Respond(req, tx, sip.NewResponseFromRequest(req, code, reason, nil))
}

// trackedTx remembers whether a final answer went out, so the recover
// never sends a second one.
type trackedTx struct {
	sip.ServerTransaction
	answered atomic.Bool
}

func (t *trackedTx) Respond(res *sip.Response) error {
	if res.StatusCode >= 200 {
		t.answered.Store(true)
	}
	return t.ServerTransaction.Respond(res)
}

// noRoute answers a method the core does not handle.
func (c *Core) noRoute(req *sip.Request, tx sip.ServerTransaction) {
	if req.Method == sip.ACK {
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, REFER, NOTIFY, SUBSCRIBE, INFO"))
	_ = tx.Respond(res)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// handleUnsupportedInDialog answers UPDATE and PRACK, which the core never
// asks for: 481 outside a dialog of ours, 501 inside one.
func (c *Core) handleUnsupportedInDialog(req *sip.Request, tx sip.ServerTransaction) {
	ch := c.channelByCallID(req.CallID().Value())
	if ch == nil || !ch.owns(req) {
		c.reject(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "dialog_mismatch")
		return
	}
	respond(req, tx, sip.StatusNotImplemented, "Not Implemented")
}

// recoverGoroutine ends a goroutine that handles network input without
// taking the process with it. Use as the first defer.
func (c *Core) recoverGoroutine(what string) {
	if v := recover(); v != nil {
		c.metrics.panics.Inc()
		c.noisy.Error("panic recovered", "in", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
}

// readFilter sees every datagram and stream read before sipgo parses it:
// a banned address gets nothing back at all (over TCP or TLS its
// connection is closed), and a UDP response missing a mandatory header
// never reaches a transaction (sipgo's dialog code reads them without
// checking). sipgo names transports in capitals ("UDP").
func (c *Core) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	udp := strings.EqualFold(p.Transport, "udp")
	if bans := c.cfg.Bans; bans != nil {
		if ap, ok := addrOf(p.RemoteAddr); ok && bans.Banned(ap.Addr()) {
			c.metrics.badRequests.WithLabelValues("banned").Inc()
			if !udp {
				return nil, errBanned
			}
			return nil, nil
		}
	}
	if udp && bytes.HasPrefix(data, []byte("SIP/2.0 ")) && !responseComplete(data) {
		c.metrics.badRequests.WithLabelValues("bad_response").Inc()
		return nil, nil
	}
	// Never an error over UDP: sipgo ends the whole UDP read loop on one.
	return data, nil
}

// errBanned ends a banned address's TCP or TLS connection.
var errBanned = errors.New("address banned")

func addrOf(a net.Addr) (netip.AddrPort, bool) {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort(), true
	case *net.TCPAddr:
		return v.AddrPort(), true
	}
	return netip.AddrPort{}, false
}

// responseComplete reports whether a response's header carries Via, From,
// To, Call-ID and CSeq (full or compact names) exactly once each.
func responseComplete(data []byte) bool {
	var seen [5]int
	head := data
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		head = data[:i]
	}
	lines := bytes.Split(head, []byte("\n"))
	for _, line := range lines[1:] {
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := strings.ToLower(strings.TrimSpace(string(line[:colon])))
		switch name {
		case "via", "v":
			seen[0] = 1 // Via may repeat
		case "from", "f":
			seen[1]++
		case "to", "t":
			seen[2]++
		case "call-id", "i":
			seen[3]++
		case "cseq":
			seen[4]++
		}
	}
	return seen == [5]int{1, 1, 1, 1, 1}
}
