package dialplans

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Rule is a named set of dial codes and parking options. Customers refer to
// a rule by name; one rule may serve many customers.
type Rule struct {
	Name string
	Type string // "PBX"

	Park        string // park prefix: Park alone parks on a random number, Park+N parks on N
	Release     string // release prefix: Release alone retrieves the caller's own park, Release+N retrieves N, Release+"*"+N a random park number
	SlotRelease string // slot retrieval prefix: SlotRelease+slot retrieves a parking slot

	RandomDigits  int  // length of random park numbers
	ParkAnyNumber bool // Park+N may name a number that is not an account of the customer

	File string
	Line int // line of the rule's name
}

// Rule defaults.
const (
	DefaultPark         = "*70"
	DefaultRelease      = "*71"
	DefaultSlotRelease  = "71"
	DefaultRandomDigits = 4
)

// TypePBX is the only rule type so far.
const TypePBX = "PBX"

var (
	nameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)
	codeRE = regexp.MustCompile(`^[0-9*#]{1,8}$`)
)

func (d *decoder) rule(f fields) *Rule {
	r := &Rule{File: d.file, Line: f.line("name").Line}
	r.Name = d.str(f, "name", true)
	if r.Name != "" && !nameRE.MatchString(r.Name) {
		d.errorf(f.vals["name"], "name: %q must be lower-case letters, digits, _ or -", r.Name)
	}

	r.Type = TypePBX
	if v := d.scalar(f, "type"); v != nil {
		if strings.EqualFold(v.Value, TypePBX) {
			r.Type = TypePBX
		} else {
			d.errorf(v, "type: unknown value %q (want PBX)", v.Value)
		}
	}

	codes, _ := d.mapping(f.vals["codes"], "codes", "park", "release", "slot_release")
	code := func(key, def string) (string, *yaml.Node) {
		if _, ok := codes.vals[key]; !ok {
			return def, nil
		}
		v := d.scalar(codes, key)
		if v == nil || v.Value == "" {
			d.errorf(codes.line(key), "%s: code must not be empty", key)
			return def, nil
		}
		if !codeRE.MatchString(v.Value) {
			d.errorf(v, "%s: code %q must be 1 to 8 of 0-9, * and #", key, v.Value)
			return def, nil
		}
		return v.Value, v
	}
	var parkN, releaseN, slotN *yaml.Node
	r.Park, parkN = code("park", DefaultPark)
	r.Release, releaseN = code("release", DefaultRelease)
	r.SlotRelease, slotN = code("slot_release", DefaultSlotRelease)
	blame := func(ns ...*yaml.Node) *yaml.Node {
		for _, n := range ns {
			if n != nil {
				return n
			}
		}
		return codes.node
	}
	if r.Park == r.Release {
		d.errorf(blame(releaseN, parkN), "codes: park and release are both %q", r.Park)
	}
	if r.Park == r.SlotRelease {
		d.errorf(blame(slotN, parkN), "codes: park and slot_release are both %q", r.Park)
	}
	if r.Release == r.SlotRelease {
		d.errorf(blame(slotN, releaseN), "codes: release and slot_release are both %q", r.Release)
	}
	if r.Park == r.Release+"*" {
		d.errorf(blame(parkN, releaseN), "codes: park %q is release followed by *, which retrieves random park numbers", r.Park)
	}

	r.RandomDigits = d.integer(f, "random_digits", DefaultRandomDigits, 2, 8)
	r.ParkAnyNumber = d.boolean(f, "park_any_number", false)
	return r
}
