package registrar

import (
	"errors"
	"strings"
)

// maxAuthParams bounds how many auth-params one credentials header may carry;
// real clients send about ten.
const maxAuthParams = 32

var (
	errAuthEmpty     = errors.New("empty credentials")
	errAuthScheme    = errors.New("missing or invalid auth scheme")
	errAuthParam     = errors.New("invalid auth-param")
	errAuthQuote     = errors.New("unterminated quoted string")
	errAuthDuplicate = errors.New("duplicate auth-param")
	errAuthTooMany   = errors.New("too many auth-params")
)

// authorization is one parsed Authorization or Proxy-Authorization value
// (RFC 7235 section 2.1 credentials): a scheme and its auth-params, names
// lower-cased, quoted values unescaped.
type authorization struct {
	scheme string
	params map[string]string
}

// parseAuthorization parses `scheme auth-param *( "," auth-param )`.
// Empty list elements (",,") are allowed, as RFC 7230 section 7 asks;
// token68 credentials (Basic) and duplicate names are rejected.
// It never panics, whatever the input.
func parseAuthorization(s string) (authorization, error) {
	var a authorization
	s = trimLWS(s)
	if s == "" {
		return a, errAuthEmpty
	}
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	if i == 0 || (i < len(s) && !isLWS(s[i])) {
		return a, errAuthScheme
	}
	a.scheme = s[:i]
	a.params = make(map[string]string, 10)
	p := &authParser{s: s, i: i}
	for {
		p.skipLWS()
		if p.eof() {
			break
		}
		if p.peek() == ',' {
			p.i++
			continue
		}
		name := p.token()
		if name == "" {
			return a, errAuthParam
		}
		p.skipLWS()
		if p.eof() || p.peek() != '=' {
			return a, errAuthParam
		}
		p.i++
		p.skipLWS()
		var val string
		if !p.eof() && p.peek() == '"' {
			v, err := p.quoted()
			if err != nil {
				return a, err
			}
			val = v
		} else {
			val = p.token()
			if val == "" {
				return a, errAuthParam
			}
		}
		name = strings.ToLower(name)
		if _, dup := a.params[name]; dup {
			return a, errAuthDuplicate
		}
		if len(a.params) == maxAuthParams {
			return a, errAuthTooMany
		}
		a.params[name] = val
		p.skipLWS()
		if !p.eof() && p.peek() != ',' {
			return a, errAuthParam
		}
	}
	if len(a.params) == 0 {
		return a, errAuthParam
	}
	return a, nil
}

type authParser struct {
	s string
	i int
}

func (p *authParser) eof() bool  { return p.i >= len(p.s) }
func (p *authParser) peek() byte { return p.s[p.i] }

func (p *authParser) skipLWS() {
	for p.i < len(p.s) && isLWS(p.s[p.i]) {
		p.i++
	}
}

func (p *authParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted-string starting at the opening quote and returns its
// unescaped content: `\x` stands for x (RFC 3261 quoted-pair).
func (p *authParser) quoted() (string, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '"':
			v := p.s[start:p.i]
			p.i++
			return v, nil
		case '\\':
			return p.quotedSlow(start)
		}
		p.i++
	}
	return "", errAuthQuote
}

func (p *authParser) quotedSlow(start int) (string, error) {
	var b strings.Builder
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '"':
			p.i++
			return b.String(), nil
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", errAuthQuote
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
			continue
		}
		b.WriteByte(c)
		p.i++
	}
	return "", errAuthQuote
}

func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimLWS(s string) string {
	for len(s) > 0 && isLWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isLWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// isTokenChar reports whether c may appear in an RFC 3261 token.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
		return true
	}
	return false
}

// quote renders s as a quoted-string, escaping '"' and '\'.
func quote(s string) string {
	if !strings.ContainsAny(s, "\"\\") {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
