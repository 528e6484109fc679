package events

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e's JSON to b: byte for byte what encoding/json makes
// of an Event (FuzzEventJSON checks it), without reflection. Every event
// the core and the control plane publish is encoded once for NATS and the
// event stream; through encoding/json that was 3 % of the process's CPU
// at 1,000 park+retrieve cycles a second. Decoding stays with
// encoding/json (DecodeEvent).
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"time":`...)
	if b, err = appendTime(b, e.Time); err != nil {
		return nil, err
	}
	b = append(b, `,"customer":`...)
	b = appendString(b, e.Customer)
	b = append(b, `,"call":`...)
	b = appendString(b, e.Call)
	b = appendOptional(b, `,"node":`, e.Node)
	b = appendOptional(b, `,"source":`, e.Source)
	b = appendOptional(b, `,"peer":`, e.Peer)
	b = appendOptional(b, `,"dialed_for":`, e.DialedFor)
	b = appendOptional(b, `,"dial":`, e.Dial)
	b = appendOptional(b, `,"linked":`, e.Linked)
	b = appendOptional(b, `,"direction":`, e.Direction)
	b = appendOptional(b, `,"account":`, e.Account)
	b = appendOptional(b, `,"trunk":`, e.Trunk)
	// omitempty does not omit a struct: encoding/json writes "from":{}.
	b = append(b, `,"from":`...)
	b = e.From.appendJSON(b)
	b = append(b, `,"to":`...)
	b = e.To.appendJSON(b)
	b = appendOptional(b, `,"dialed":`, e.Dialed)
	if e.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(e.Code), 10)
	}
	b = appendOptional(b, `,"reason":`, e.Reason)
	b = appendOptional(b, `,"target":`, e.Target)
	b = appendOptional(b, `,"refer_id":`, e.ReferID)
	b = appendOptional(b, `,"playback":`, e.Playback)
	b = appendOptional(b, `,"digit":`, e.Digit)
	if len(e.Contacts) > 0 {
		b = append(b, `,"contacts":[`...)
		for i, c := range e.Contacts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"uri":`...)
			b = appendString(b, c.URI)
			b = append(b, `,"source":`...)
			b = appendString(b, c.Source)
			b = append(b, `,"expires":`...)
			if b, err = appendTime(b, c.Expires); err != nil {
				return nil, err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if p := e.Park; p != nil {
		b = append(b, `,"park":{"number":`...)
		b = appendString(b, p.Number)
		b = append(b, `,"kind":`...)
		b = appendString(b, p.Kind)
		b = appendOptional(b, `,"code":`, p.Code)
		b = appendOptional(b, `,"parker":`, p.Parker)
		b = append(b, `,"parked":`...)
		b = p.Parked.appendJSON(b)
		b = appendOptional(b, `,"by":`, p.By)
		b = append(b, `,"since":`...)
		if b, err = appendTime(b, p.Since); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	b = appendOptional(b, `,"slot":`, e.Slot)
	return append(b, '}'), nil
}

func (p *Party) appendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b)
	for _, f := range [...]struct{ key, v string }{
		{`"user":`, p.User}, {`"display":`, p.Display}, {`"uri":`, p.URI},
	} {
		if f.v == "" {
			continue
		}
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, f.key...)
		b = appendString(b, f.v)
	}
	return append(b, '}')
}

// appendOptional appends key and v unless v is empty (omitempty).
func appendOptional(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(append(b, key...), v)
}

var errTimeRange = errors.New("events: time not representable in RFC 3339")

// appendTime appends t as time.Time's MarshalJSON does, with its checks:
// a four-digit year and a zone within ±23 hours.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	n := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	if len(b) < n+5 || b[n+4] != '-' {
		return nil, errTimeRange
	}
	if b[len(b)-1] != 'Z' {
		if c := b[len(b)-6]; '0' <= c && c <= '9' {
			return nil, errTimeRange
		}
		if h := 10*(b[len(b)-5]-'0') + (b[len(b)-4] - '0'); h >= 24 {
			return nil, errTimeRange
		}
	}
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does by
// default: <, > and & escaped for HTML, invalid UTF-8 as U+FFFD, U+2028
// and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
