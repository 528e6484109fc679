package dialplans

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// setOf builds a Set from inline YAML documents, failing the test on any
// problem.
func setOf(t *testing.T, docs ...string) *Set {
	t.Helper()
	m := map[string]*Doc{}
	for i, y := range docs {
		name := fmt.Sprintf("doc%d.yaml", i)
		d, err := Parse(name, []byte(y))
		if err != nil {
			t.Fatalf("Parse %s:\n%v", name, err)
		}
		m[name] = d
	}
	s, probs := build(m)
	if len(probs) > 0 {
		t.Fatalf("build: %v", errorOf(probs))
	}
	return s
}

const defaultRule = `kind: rule
name: r
`

const customRule = `kind: rule
name: r
codes: {park: "64", release: "65", slot_release: "66"}
`

// nestedRule has codes that are prefixes of each other.
const nestedRule = `kind: rule
name: r
codes: {park: "*7", release: "*71", slot_release: "7"}
`

const routeCustomer = `kind: customer
name: c
domain: c.test
rule: r
accounts:
  - {extension: "200", password: p}
  - {extension: "333", password: p}
dids:
  - {number: "+15551230000", extension: "200"}
slots:
  - {number: "1"}
  - {number: "12345"}
`

func TestRoute(t *testing.T) {
	tests := []struct {
		rule   string
		dialed string
		want   Route
	}{
		{defaultRule, "*70", Route{RouteParkRandom, ""}},
		{defaultRule, "*70333", Route{RoutePark, "333"}},
		{defaultRule, "*70444", Route{RoutePark, "444"}}, // caller checks ParkNumberAllowed
		{defaultRule, "*71", Route{RouteRetrieveOwn, ""}},
		{defaultRule, "*71333", Route{RouteRetrieve, "333"}},
		{defaultRule, "*71*7250", Route{RouteRetrieveRandom, "7250"}},
		{defaultRule, "*71*", Route{}},
		{defaultRule, "*71*72a", Route{}},
		{defaultRule, "*70abc", Route{}},
		{defaultRule, "711", Route{RouteSlot, "1"}},
		{defaultRule, "7112345", Route{RouteSlot, "12345"}},
		{defaultRule, "712", Route{}}, // no slot 2
		{defaultRule, "71", Route{}},
		{defaultRule, "200", Route{RouteExtension, "200"}},
		{defaultRule, "+15551230000", Route{RouteExtension, "200"}},
		{defaultRule, "201", Route{}},
		{defaultRule, "", Route{}},
		{defaultRule, "*7", Route{}},

		{customRule, "64", Route{RouteParkRandom, ""}},
		{customRule, "644999", Route{RoutePark, "4999"}},
		{customRule, "64999", Route{RoutePark, "999"}},
		{customRule, "65", Route{RouteRetrieveOwn, ""}},
		{customRule, "65999", Route{RouteRetrieve, "999"}},
		{customRule, "65*7250", Route{RouteRetrieveRandom, "7250"}},
		{customRule, "661", Route{RouteSlot, "1"}},
		{customRule, "711", Route{}},
		{customRule, "*70", Route{}},
		{customRule, "333", Route{RouteExtension, "333"}},

		{nestedRule, "*7", Route{RouteParkRandom, ""}},
		{nestedRule, "*7333", Route{RoutePark, "333"}},
		{nestedRule, "*71", Route{RouteRetrieveOwn, ""}}, // exact code beats park on "1"
		{nestedRule, "*71333", Route{RouteRetrieve, "333"}},
		{nestedRule, "*71*99", Route{RouteRetrieveRandom, "99"}},
		{nestedRule, "71", Route{RouteSlot, "1"}},
		{nestedRule, "712345", Route{RouteSlot, "12345"}},
		{nestedRule, "72", Route{}},
	}
	names := map[string]string{defaultRule: "default", customRule: "custom", nestedRule: "nested"}
	for _, tt := range tests {
		t.Run(names[tt.rule]+"/"+tt.dialed, func(t *testing.T) {
			c := setOf(t, tt.rule, routeCustomer).Customer("c")
			if got := c.Route(tt.dialed); got != tt.want {
				t.Errorf("Route(%q) = %v, want %v", tt.dialed, got, tt.want)
			}
		})
	}
}

func TestRouteString(t *testing.T) {
	for r, want := range map[Route]string{
		{}:                     "none",
		{RoutePark, "333"}:     "park 333",
		{RouteRetrieveOwn, ""}: "retrieve-own",
		{RouteKind(42), "1"}:   "RouteKind(42) 1",
	} {
		if got := r.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", r, got, want)
		}
	}
}

func TestParkNumberAllowed(t *testing.T) {
	c := setOf(t, defaultRule, routeCustomer).Customer("c")
	if !c.ParkNumberAllowed("333") || c.ParkNumberAllowed("444") {
		t.Error("default rule: want only accounts")
	}
	c = setOf(t, defaultRule+"park_any_number: true\n", routeCustomer).Customer("c")
	if !c.ParkNumberAllowed("444") {
		t.Error("park_any_number: want any number")
	}
}

func TestPermissions(t *testing.T) {
	s := setOf(t, defaultRule, `kind: customer
name: c
domain: C.Test
rule: r
accounts:
  - {extension: "1", password: p}
  - {extension: "2", password: p, permissions: []}
  - {extension: "3", password: p, permissions: [call_control]}
  - {extension: "4", password: p, permissions: [park, retrieve, call_control]}
`)
	tests := []struct {
		ext                string
		park, ret, control bool
	}{
		{"1", true, true, false},
		{"2", false, false, false},
		{"3", false, false, true},
		{"4", true, true, true},
	}
	for _, tt := range tests {
		c, a := s.Account("c.TEST", tt.ext)
		if c == nil || a == nil {
			t.Fatalf("Account(c.TEST, %s) = nil", tt.ext)
		}
		if a.Can(PermPark) != tt.park || a.Can(PermRetrieve) != tt.ret || a.Can(PermCallControl) != tt.control {
			t.Errorf("%s: permissions %v", tt.ext, a.Permissions)
		}
	}
	if c, a := s.Account("c.test", "9"); c != nil || a != nil {
		t.Error("unknown account found")
	}
	if c, a := s.Account("x.test", "1"); c != nil || a != nil {
		t.Error("unknown domain found")
	}
	var none *Account
	if none.Can(PermPark) {
		t.Error("nil account can park")
	}
}

func TestDefaults(t *testing.T) {
	s := setOf(t, "kind: rule\nname: r\n", `kind: customer
name: c
domain: c.test
rule: r
accounts:
  - {extension: "1", password: p}
slots:
  - {number: "5"}
  - {number: "6", timeout: 45}
`)
	r := s.Rule("r")
	if r.Type != TypePBX || r.Park != "*70" || r.Release != "*71" || r.SlotRelease != "71" || r.RandomDigits != 4 || r.ParkAnyNumber {
		t.Errorf("rule defaults: %+v", r)
	}
	c := s.Customer("c")
	want := Features{
		Parking:     true,
		DialTimeout: 30 * time.Second,
		AutoRetrieve: AutoRetrieve{
			After:     120 * time.Second,
			Ring:      RingNormal,
			AlertInfo: "<http://127.0.0.1/Bellcore-dr2>;info=Bellcore-dr2",
			Attempts:  3,
		},
		SRTP:   SRTPOptional,
		Digest: DigestMD5 | DigestSHA256,
	}
	if c.Features != want {
		t.Errorf("features = %+v\nwant %+v", c.Features, want)
	}
	a := c.Account("1")
	if a.AnsweringMode != AnswerRing || !slices.Equal(a.Permissions, []string{PermPark, PermRetrieve, PermOutside}) || a.Line != 6 {
		t.Errorf("account defaults: %+v", a)
	}
	if c.SlotTimeout("5") != 120*time.Second || c.SlotTimeout("6") != 45*time.Second {
		t.Errorf("slot timeouts: %v %v", c.SlotTimeout("5"), c.SlotTimeout("6"))
	}
}

func TestTrunkFor(t *testing.T) {
	s := setOf(t, defaultRule, `kind: customer
name: a
domain: a.test
rule: r
accounts: [{extension: "1", password: p}]
dids: [{number: "+100", extension: "1"}]
trunks:
  - {name: exact, address: 192.0.2.1}
  - {name: port, address: "192.0.2.2:5080"}
  - {name: net, address: 198.51.100.0/24}
  - {name: v6, address: "2001:db8::/32"}
`, `kind: customer
name: b
domain: b.test
rule: r
accounts: [{extension: "1", password: p}]
dids: [{number: "+200", extension: "1"}]
trunks: [{name: b, address: 192.0.2.1}]
`)
	tests := []struct {
		src, dialed     string
		customer, trunk string
	}{
		{"192.0.2.1:5060", "+100", "a", "exact"},
		{"192.0.2.1:5060", "+200", "b", "b"},
		{"192.0.2.1:5060", "+300", "", ""},
		{"192.0.2.2:5080", "+100", "a", "port"},
		{"192.0.2.2:5060", "+100", "", ""},
		{"198.51.100.77:5060", "+100", "a", "net"},
		{"[::ffff:198.51.100.77]:5060", "+100", "a", "net"},
		{"[2001:db8::5]:5060", "+100", "a", "v6"},
		{"203.0.113.1:5060", "+100", "", ""},
		{"198.51.100.77:5060", "+200", "", ""},
	}
	for _, tt := range tests {
		c, tr := s.TrunkFor(netip.MustParseAddrPort(tt.src), tt.dialed)
		var gotC, gotT string
		if c != nil {
			gotC, gotT = c.Name, tr.Name
		}
		if gotC != tt.customer || gotT != tt.trunk {
			t.Errorf("TrunkFor(%s, %s) = %q, %q; want %q, %q", tt.src, tt.dialed, gotC, gotT, tt.customer, tt.trunk)
		}
	}
}

func TestOutboundURI(t *testing.T) {
	for _, tc := range []struct {
		addr, want string
		ok         bool
	}{
		{"127.0.0.1", "sip:+15550001111@127.0.0.1:5060", true},
		{"127.0.0.1:5099", "sip:+15550001111@127.0.0.1:5099", true},
		{"203.0.113.0/24", "", false},
	} {
		prefix, port, err := parseTrunkAddress(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &Customer{Trunks: []*Trunk{{Name: "t", Address: tc.addr, prefix: prefix, port: port}}}
		got, ok := c.OutboundURI("+15550001111")
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
	c := &Customer{}
	if _, ok := c.OutboundURI("+1555"); ok {
		t.Error("a customer without trunks reached out")
	}
}

func TestRouteOutside(t *testing.T) {
	c := &Customer{Accounts: map[string]*Account{"900": {Extension: "900"}}, DIDs: map[string]string{},
		Slots: map[string]*Slot{}, Features: Features{OutsidePrefix: "9"}}
	for dialed, want := range map[string]Route{
		"9004930123456": {Kind: RouteOutside, Number: "+4930123456"},
		"+15551234567":  {Kind: RouteOutside, Number: "+15551234567"},
		"902071234567":  {Kind: RouteOutside, Number: "02071234567"},
		"900":           {Kind: RouteExtension, Number: "900"}, // an extension wins
		"9":             {},                                    // the prefix alone
		"912":           {},                                    // too short
		"9+12345":       {},
		"+1":            {},
		"*70":           {Kind: RouteParkRandom},
	} {
		if got := c.Route(dialed); got != want {
			t.Errorf("Route(%q) = %v, want %v", dialed, got, want)
		}
	}
	c.Features.OutsidePrefix = ""
	if got := c.Route("9004930123456"); got.Kind != RouteNone {
		t.Errorf("without a prefix: %v", got)
	}
}
