package presence

import (
	"errors"
	"strconv"
	"strings"
)

// Package is the event package this server notifies.
const Package = "dialog"

// ContentType is the body type of its NOTIFYs.
const ContentType = "application/dialog-info+xml"

var (
	errNoEvent    = errors.New("presence: no event package")
	errBadExpires = errors.New("presence: malformed Expires")
)

// ParseEvent splits an Event header value ("dialog;id=7") into the package
// name, lower-cased, and the id parameter (RFC 6665 section 8.2.1).
func ParseEvent(v string) (pkg, id string, err error) {
	parts := strings.Split(v, ";")
	pkg = strings.ToLower(strings.TrimSpace(parts[0]))
	if pkg == "" || !isToken(pkg) {
		return "", "", errNoEvent
	}
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "id") {
			id = strings.TrimSpace(val)
			if !isToken(id) {
				return "", "", errNoEvent
			}
		}
	}
	return pkg, id, nil
}

// ParseExpires parses an Expires value (delta-seconds). Values too large
// for the clamp that follows saturate instead of failing.
func ParseExpires(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 20 {
		return 0, errBadExpires
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, errBadExpires
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		// Twenty digits overflow int64: treat as "very long".
		return 1 << 40, nil
	}
	return n, nil
}

// Accepts reports whether the Accept header values allow a dialog-info
// body. No Accept header means the package default, which is dialog-info
// (RFC 4235 section 3.5).
func Accepts(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, r := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(r, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case ContentType, "application/*", "*/*":
				return true
			case "":
				// An empty Accept value: nothing acceptable was named, but
				// some phones send it bare; be lenient.
				if len(values) == 1 && strings.TrimSpace(v) == "" {
					return true
				}
			}
		}
	}
	return false
}

// isToken reports whether s is an RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
