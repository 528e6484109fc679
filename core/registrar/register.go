package registrar

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// dateFormat is the SIP Date format (RFC 3261 20.17, RFC 1123 in GMT).
const dateFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// contactReq is one Contact of a REGISTER.
type contactReq struct {
	uri     sip.Uri
	params  sip.HeaderParams // without expires
	expires int64            // seconds; -1 when the Contact has no expires param
	key     string
}

// HandleRegister answers a REGISTER; pass it to sipgo's srv.OnRegister. The
// account is the To URI's user and the realm its host (RFC 3261 10.3).
func (r *Registrar) HandleRegister(req *sip.Request, tx sip.ServerTransaction) {
	to := req.To()
	if to == nil {
		r.respond(req, tx, sip.StatusBadRequest, "Missing To header")
		return
	}
	if to.Address.User == "" || to.Address.Host == "" {
		r.respond(req, tx, sip.StatusBadRequest, "To URI needs user and domain")
		return
	}
	contacts, wildcard, err := parseContacts(req)
	if err != nil {
		r.respond(req, tx, sip.StatusBadRequest, err.Error())
		return
	}
	headerExpires := int64(-1)
	if h := req.GetHeader("Expires"); h != nil {
		v, ok := parseDeltaSeconds(h.Value())
		if !ok {
			r.respond(req, tx, sip.StatusBadRequest, "Bad Expires header")
			return
		}
		headerExpires = v
	}
	if wildcard && (len(contacts) > 0 || headerExpires != 0) {
		r.respond(req, tx, sip.StatusBadRequest, "Contact * needs Expires: 0 and no other Contact")
		return
	}
	var cseq uint32
	if h := req.CSeq(); h != nil {
		cseq = h.SeqNo
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}

	id, ok := r.authenticate(req, tx, to.Address.User, to.Address.Host)
	if !ok {
		return
	}

	// Expiry per contact: its own param, else the header, else the default.
	granted := make([]time.Duration, len(contacts))
	for i, c := range contacts {
		sec := c.expires
		if sec < 0 {
			sec = headerExpires
		}
		var d time.Duration
		switch {
		case sec < 0:
			d = r.opts.DefaultExpires
		case sec == 0:
			d = 0
		default:
			d = time.Duration(min(sec, int64(math.MaxInt64/time.Second))) * time.Second
			if d < r.opts.MinExpires {
				res := sip.NewResponseFromRequest(req, sip.StatusIntervalToBrief, "Interval Too Brief", nil)
				res.AppendHeader(sip.NewHeader("Min-Expires", strconv.FormatInt(int64(ceilSeconds(r.opts.MinExpires)), 10)))
				r.send(req, tx, res)
				return
			}
			d = min(d, r.opts.MaxExpires)
		}
		granted[i] = d
	}

	now := r.now()
	aor := aorKey{id.Customer, id.Account}
	r.mu.Lock()
	changed, err := r.applyLocked(aor, req, contacts, granted, wildcard, callID, cseq, now)
	if err != nil {
		r.mu.Unlock()
		r.respond(req, tx, sip.StatusBadRequest, err.Error())
		return
	}
	current := snapshot(r.aors[aor], now)
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	for _, e := range sortedLive(r.aors[aor], now) {
		ch := &sip.ContactHeader{Address: *e.b.Contact.Clone(), Params: e.params.Clone()}
		ch.Params.Add("expires", strconv.Itoa(ceilSeconds(e.b.Expires.Sub(now))))
		res.AppendHeader(ch)
	}
	if changed {
		r.enqueueLocked(aor, now)
	}
	r.mu.Unlock()

	if len(granted) > 0 {
		e := sip.ExpiresHeader(uint32(ceilSeconds(granted[0])))
		res.AppendHeader(&e)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(dateFormat)))
	r.send(req, tx, res)
	if changed {
		r.log.Debug("registered", "customer", id.Customer, "account", id.Account,
			"source", req.Source(), "bindings", len(current))
		r.notify()
	}
}

var errOutOfOrder = errors.New("CSeq not above the binding's last REGISTER")

// applyLocked updates the bindings of aor; it changes nothing and returns an
// error when a contact's REGISTER is out of order (RFC 3261 10.3 step 7).
func (r *Registrar) applyLocked(aor aorKey, req *sip.Request, contacts []contactReq, granted []time.Duration,
	wildcard bool, callID string, cseq uint32, now time.Time) (bool, error) {
	list := r.aors[aor]
	if wildcard {
		for _, e := range slices.Clone(list) {
			r.removeLocked(e)
		}
		return len(list) > 0, nil
	}
	for _, c := range contacts {
		for _, e := range list {
			if e.key == c.key && e.b.CallID == callID && cseq <= e.b.CSeq {
				return false, errOutOfOrder
			}
		}
	}
	changed := false
	source, transport := req.Source(), strings.ToLower(req.Transport())
	for i, c := range contacts {
		var found *entry
		for _, e := range r.aors[aor] {
			if e.key == c.key {
				found = e
				break
			}
		}
		if granted[i] == 0 {
			if found != nil {
				r.removeLocked(found)
				changed = true
			}
			continue
		}
		r.seq++
		b := Binding{
			Contact:   c.uri,
			Source:    source,
			Transport: transport,
			Expires:   now.Add(granted[i]),
			CallID:    callID,
			CSeq:      cseq,
		}
		if found != nil {
			found.b, found.params, found.seq = b, c.params, r.seq
			r.queue.Set(found, b.Expires)
		} else {
			e := &entry{aor: aor, key: c.key, params: c.params, b: b, seq: r.seq}
			r.queue.Set(e, b.Expires)
			r.aors[aor] = append(r.aors[aor], e)
			r.log.Info("new binding", "customer", aor.customer, "account", aor.account,
				"contact", c.uri.String(), "source", source, "transport", transport)
		}
		changed = true
	}
	if changed && r.queue.Len() > 0 {
		r.poke()
	}
	return changed, nil
}

// sortedLive returns the unexpired entries of list, newest first.
func sortedLive(list []*entry, now time.Time) []*entry {
	live := make([]*entry, 0, len(list))
	for _, e := range list {
		if e.b.Expires.After(now) {
			live = append(live, e)
		}
	}
	slices.SortFunc(live, func(a, b *entry) int { return cmp.Compare(b.seq, a.seq) })
	return live
}

// parseContacts reads the Contact headers of a REGISTER. A "*" contact sets
// wildcard and is not returned.
func parseContacts(req *sip.Request) (list []contactReq, wildcard bool, err error) {
	for _, h := range req.GetHeaders("Contact") {
		var ch *sip.ContactHeader
		switch v := h.(type) {
		case *sip.ContactHeader:
			ch = v
		default:
			ch = &sip.ContactHeader{}
			if _, err := sip.ParseAddressValue(h.Value(), &ch.Address, &ch.Params); err != nil {
				return nil, false, errors.New("Bad Contact header")
			}
		}
		if ch.Address.Wildcard {
			if wildcard {
				return nil, false, errors.New("Bad Contact header: more than one *")
			}
			wildcard = true
			continue
		}
		scheme := strings.ToLower(ch.Address.Scheme)
		if scheme != "sip" && scheme != "sips" {
			return nil, false, errors.New("Bad Contact header: not a sip or sips URI")
		}
		if ch.Address.Host == "" {
			return nil, false, errors.New("Bad Contact header: no host")
		}
		c := contactReq{uri: *ch.Address.Clone(), expires: -1}
		for _, k := range ch.Params.Keys() {
			v, _ := ch.Params.Get(k)
			if strings.EqualFold(k, "expires") {
				sec, ok := parseDeltaSeconds(v)
				if !ok {
					return nil, false, errors.New("Bad Contact header: bad expires parameter")
				}
				c.expires = sec
				continue
			}
			c.params.Add(k, v)
		}
		c.key = contactKey(&c.uri)
		list = append(list, c)
	}
	return list, wildcard, nil
}

// contactKey identifies a Contact URI for "same contact" comparisons: scheme
// and host case-insensitive, user and port exact, URI parameters sorted.
func contactKey(u *sip.Uri) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(u.Scheme))
	b.WriteByte(':')
	b.WriteString(u.User)
	b.WriteByte('@')
	b.WriteString(strings.ToLower(u.Host))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(u.Port))
	keys := u.UriParams.Keys()
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	for _, k := range keys {
		v, _ := u.UriParams.Get(k)
		b.WriteByte(';')
		b.WriteString(strings.ToLower(k))
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// parseDeltaSeconds parses RFC 3261 delta-seconds; values past 2^32-1 are
// taken as 2^32-1, as the RFC asks.
func parseDeltaSeconds(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return math.MaxUint32, true // only range errors are left
	}
	return int64(v), true
}

// ceilSeconds rounds d up to whole seconds (at least 0).
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}
