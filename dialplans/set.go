package dialplans

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Set is a complete, validated dialplan: every rule and customer of a tree.
// A Set is never modified once built; a reload builds a new one.
type Set struct {
	rules     map[string]*Rule
	customers map[string]*Customer
	byDomain  map[string]*Customer
	byDID     map[string]*Customer
	sorted    []*Customer
}

// Load reads every dialplan file under dir and returns the Set they make.
// The error, if any, is an *Error listing every problem in every file.
func Load(dir string) (*Set, error) {
	files, err := readTree(dir)
	if err != nil {
		return nil, errorOf([]Problem{{File: dir, Msg: err.Error()}})
	}
	docs, probs := parseFiles(files)
	set, more := build(docs)
	if probs = append(probs, more...); len(probs) > 0 {
		return nil, errorOf(probs)
	}
	return set, nil
}

// Check loads dir and returns every problem, sorted by file and line; nil
// when the tree is valid. It backs `callparkd check DIR`.
func Check(dir string) []Problem {
	_, err := Load(dir)
	if e, ok := err.(*Error); ok {
		return e.Problems
	}
	return nil
}

func parseFiles(files map[string]*file) (map[string]*Doc, []Problem) {
	docs := map[string]*Doc{}
	var probs []Problem
	for path, f := range files {
		if f.err != nil {
			probs = append(probs, Problem{File: path, Msg: f.err.Error()})
			continue
		}
		doc, err := Parse(path, f.data)
		if err != nil {
			probs = append(probs, err.(*Error).Problems...)
			continue
		}
		docs[path] = doc
	}
	return docs, probs
}

// build checks what spans files and makes a Set of docs. It returns no Set
// when there are problems.
func build(docs map[string]*Doc) (*Set, []Problem) {
	s := &Set{
		rules:     map[string]*Rule{},
		customers: map[string]*Customer{},
		byDomain:  map[string]*Customer{},
		byDID:     map[string]*Customer{},
	}
	var probs []Problem
	problem := func(file string, line int, format string, args ...any) {
		probs = append(probs, Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	paths := slices.Sorted(maps.Keys(docs))
	for _, p := range paths {
		r := docs[p].Rule
		if r == nil {
			continue
		}
		if o := s.rules[r.Name]; o != nil {
			problem(r.File, r.Line, "duplicate rule name %q (also in %s:%d)", r.Name, o.File, o.Line)
			continue
		}
		s.rules[r.Name] = r
	}
	for _, p := range paths {
		dc := docs[p].Customer
		if dc == nil {
			continue
		}
		c := *dc // the parsed doc is shared with older Sets: never modify it
		if o := s.customers[c.Name]; o != nil {
			problem(c.File, c.Line, "duplicate customer name %q (also in %s:%d)", c.Name, o.File, o.Line)
			continue
		}
		if o := s.byDomain[c.Domain]; o != nil {
			problem(c.File, c.domainLine, "domain %q is also used by customer %q (%s:%d)", c.Domain, o.Name, o.File, o.domainLine)
			continue
		}
		c.Rule = s.rules[c.RuleName]
		if c.Rule == nil {
			problem(c.File, c.ruleLine, "unknown rule %q", c.RuleName)
			continue
		}
		bad := false
		for _, ext := range slices.Sorted(maps.Keys(c.Accounts)) {
			if code := codeName(c.Rule, ext); code != "" {
				problem(c.File, c.Accounts[ext].Line, "extension %q is the %s code of rule %q", ext, code, c.Rule.Name)
				bad = true
			}
		}
		for _, n := range slices.Sorted(maps.Keys(c.Slots)) {
			sl, dialed := c.Slots[n], c.Rule.SlotRelease+n
			if a := c.Accounts[dialed]; a != nil {
				problem(c.File, sl.Line, "slot %q: %s (slot_release %q + slot) is also extension %s (line %d)", n, dialed, c.Rule.SlotRelease, dialed, a.Line)
				bad = true
			}
			if _, ok := c.DIDs[dialed]; ok {
				problem(c.File, sl.Line, "slot %q: %s (slot_release %q + slot) is also a DID", n, dialed, c.Rule.SlotRelease)
				bad = true
			}
		}
		for _, num := range slices.Sorted(maps.Keys(c.DIDs)) {
			if o := s.byDID[num]; o != nil {
				problem(c.File, c.didLines[num], "did %q is also a DID of customer %q (%s:%d)", num, o.Name, o.File, o.didLines[num])
				bad = true
			}
		}
		if bad {
			continue
		}
		for num := range c.DIDs {
			s.byDID[num] = &c
		}
		s.customers[c.Name] = &c
		s.byDomain[c.Domain] = &c
		s.sorted = append(s.sorted, &c)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	slices.SortFunc(s.sorted, func(a, b *Customer) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

// codeName names the rule code ext is equal to, if any: dialing such an
// extension would always hit the code.
func codeName(r *Rule, ext string) string {
	switch ext {
	case r.Park:
		return "park"
	case r.Release:
		return "release"
	}
	return ""
}

// Rule returns the rule named name, or nil.
func (s *Set) Rule(name string) *Rule {
	if s == nil {
		return nil
	}
	return s.rules[name]
}

// Customer returns the customer named name, or nil.
func (s *Set) Customer(name string) *Customer {
	if s == nil {
		return nil
	}
	return s.customers[name]
}

// CustomerByDomain returns the customer whose SIP domain is domain (any
// case), or nil.
func (s *Set) CustomerByDomain(domain string) *Customer {
	if s == nil {
		return nil
	}
	return s.byDomain[strings.ToLower(domain)]
}

// Customers returns every customer, sorted by name. The slice is the
// caller's.
func (s *Set) Customers() []*Customer {
	if s == nil {
		return nil
	}
	return slices.Clone(s.sorted)
}

// TrunkFor finds the customer an inbound call belongs to: one of whose
// trunks matches src and whose DIDs include dialed. It returns nil, nil
// when there is none.
func (s *Set) TrunkFor(src netip.AddrPort, dialed string) (*Customer, *Trunk) {
	if s == nil {
		return nil, nil
	}
	c := s.byDID[dialed]
	if c == nil {
		return nil, nil
	}
	for _, t := range c.Trunks {
		if t.Matches(src) {
			return c, t
		}
	}
	return nil, nil
}

// Account returns the customer with SIP domain domain and its account user
// (an extension), or nil, nil.
func (s *Set) Account(domain, user string) (*Customer, *Account) {
	c := s.CustomerByDomain(domain)
	if a := c.Account(user); a != nil {
		return c, a
	}
	return nil, nil
}
