package dialplans

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree by hand, so that every problem carries the
// line of the node it is about and unknown keys can be reported.
type decoder struct {
	file  string
	probs []Problem
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases (yaml.v3 refuses recursive ones when parsing; the
// bound is only a safety net).
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// fields is a decoded YAML mapping: values and key nodes by key.
type fields struct {
	node *yaml.Node
	what string
	vals map[string]*yaml.Node
	keys map[string]*yaml.Node
}

// mapping checks that n is a mapping (an empty value counts as an empty
// mapping) whose keys are all known. Unknown and repeated keys are reported
// at the key's line. It reports false when n is not a mapping at all.
func (d *decoder) mapping(n *yaml.Node, what string, known ...string) (fields, bool) {
	f := fields{node: n, what: what, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	n = resolve(n)
	if isNull(n) {
		return f, true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping of key: value", what)
		return f, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errorf(n.Content[i], "%s: keys must be plain words", what)
			continue
		}
		if !contains(known, k.Value) {
			d.errorf(k, "unknown key %q in %s (want one of %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		if first, dup := f.keys[k.Value]; dup {
			d.errorf(k, "duplicate key %q in %s (first at line %d)", k.Value, what, first.Line)
			continue
		}
		f.keys[k.Value] = k
		f.vals[k.Value] = v
	}
	return f, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// line is the line to blame for key: its value if present, else the mapping.
func (f fields) line(key string) *yaml.Node {
	if v := f.vals[key]; v != nil {
		return v
	}
	return f.node
}

// scalar returns the scalar value node for key, nil if absent or null.
func (d *decoder) scalar(f fields, key string) *yaml.Node {
	v := resolve(f.vals[key])
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		d.errorf(f.vals[key], "%s: want a single value, not a list or mapping", key)
		return nil
	}
	return v
}

// str returns the string value of key. A required key that is absent or
// empty is reported.
func (d *decoder) str(f fields, key string, required bool) string {
	raw, present := f.vals[key]
	if r := resolve(raw); present && !isNull(r) && r.Kind != yaml.ScalarNode {
		d.scalar(f, key) // reports the shape
		return ""
	}
	v := d.scalar(f, key)
	if v == nil || v.Value == "" {
		if required {
			if present {
				d.errorf(f.line(key), "%s: must not be empty", key)
			} else {
				d.errorf(f.node, "missing required key %q in %s", key, f.what)
			}
		}
		return ""
	}
	return v.Value
}

func (d *decoder) boolean(f fields, key string, def bool) bool {
	v := d.scalar(f, key)
	if v == nil {
		return def
	}
	if v.Tag == "!!bool" {
		if b, err := strconv.ParseBool(strings.ToLower(v.Value)); err == nil {
			return b
		}
	}
	d.errorf(v, "%s: want true or false, got %q", key, v.Value)
	return def
}

func (d *decoder) integer(f fields, key string, def, lo, hi int) int {
	v := d.scalar(f, key)
	if v == nil {
		return def
	}
	var i int
	if v.Tag != "!!int" || v.Decode(&i) != nil {
		d.errorf(v, "%s: want a whole number, got %q", key, v.Value)
		return def
	}
	if i < lo || i > hi {
		d.errorf(v, "%s: %d is out of range %d..%d", key, i, lo, hi)
		return def
	}
	return i
}

// duration accepts a Go duration ("90s", "2m") or whole seconds (90).
func (d *decoder) duration(f fields, key string, def time.Duration) time.Duration {
	v := d.scalar(f, key)
	if v == nil {
		return def
	}
	var dur time.Duration
	switch v.Tag {
	case "!!int":
		var secs int64
		if v.Decode(&secs) != nil || secs > int64(24*time.Hour/time.Second) {
			d.errorf(v, "%s: invalid duration %q", key, v.Value)
			return def
		}
		dur = time.Duration(secs) * time.Second
	case "!!str":
		var err error
		if dur, err = time.ParseDuration(v.Value); err != nil {
			d.errorf(v, "%s: invalid duration %q (want e.g. 30s, 2m or whole seconds)", key, v.Value)
			return def
		}
	default:
		d.errorf(v, "%s: invalid duration %q (want e.g. 30s, 2m or whole seconds)", key, v.Value)
		return def
	}
	if dur <= 0 {
		d.errorf(v, "%s: duration must be positive, got %q", key, v.Value)
		return def
	}
	return dur
}

func (d *decoder) enum(f fields, key, def string, allowed ...string) string {
	v := d.scalar(f, key)
	if v == nil {
		return def
	}
	if !contains(allowed, v.Value) {
		d.errorf(v, "%s: unknown value %q (want %s)", key, v.Value, orList(allowed))
		return def
	}
	return v.Value
}

// seq returns the items of the list under key; an absent or empty key is an
// empty list.
func (d *decoder) seq(f fields, key string) []*yaml.Node {
	v := resolve(f.vals[key])
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(f.vals[key], "%s: want a list", key)
		return nil
	}
	return v.Content
}

func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
