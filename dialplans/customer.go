package dialplans

import (
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Customer is a tenant of the PBX: one SIP domain with its accounts, DIDs,
// trunks and parking slots, dialing by one Rule.
type Customer struct {
	Name     string // id used in NATS subjects: [a-z0-9_-]+
	Domain   string // SIP domain and digest realm, lower-cased
	Rule     *Rule  // resolved by Load; nil in a Doc from Parse
	RuleName string // as written in the file
	Features Features
	API      API // call-control API credentials

	Accounts map[string]*Account // by extension
	DIDs     map[string]string   // number -> extension
	Trunks   []*Trunk
	Slots    map[string]*Slot // by number

	File string
	Line int // line of the customer's name

	ruleLine, domainLine int
	didLines             map[string]int
}

// Features switch parts of the service on and off for a customer.
type Features struct {
	Parking      bool          // call parking
	API          bool          // call-control API
	DialTimeout  time.Duration // ring time for extension calls
	Music        string        // "" for built-in music on hold, else a directory of 8 kHz mono 16-bit WAV files
	AutoRetrieve AutoRetrieve
	// OutsidePrefix is dialed before an outside number ("9"); numbers
	// starting with + are outside numbers too.
	OutsidePrefix string
	// SRTP is the media encryption policy of the customer's accounts
	// (SRTPOptional by default; an account's own srtp key wins).
	SRTP string
	// Digest is the set of digest algorithms its phones are challenged
	// with (default both; some phones, such as baresip 1.0, fail on a
	// challenge they cannot answer instead of skipping it).
	Digest Digest
}

// Digest is a set of digest authentication algorithms.
type Digest uint8

// The digest algorithms.
const (
	DigestMD5    Digest = 1 << iota // RFC 2617
	DigestSHA256                    // RFC 8760
)

// Algorithms lists the set's algorithms as SIP names, MD5 first (many
// phones read only the first challenge).
func (d Digest) Algorithms() []string {
	var out []string
	if d&DigestMD5 != 0 {
		out = append(out, "MD5")
	}
	if d&DigestSHA256 != 0 {
		out = append(out, "SHA-256")
	}
	return out
}

// Media encryption policies (features.srtp, an account's srtp).
const (
	// SRTPOptional: SRTP (SDES) when the phone offers it over TLS, plain
	// RTP otherwise.
	SRTPOptional = "optional"
	// SRTPRequired: the account's calls are SRTP over TLS or nothing; a
	// plain offer gets 488 and only its TLS contacts are rung.
	SRTPRequired = "required"
)

// SRTPRequired reports whether calls from and to a must be encrypted.
func (c *Customer) SRTPRequired(a *Account) bool {
	if a != nil && a.SRTP != "" {
		return a.SRTP == SRTPRequired
	}
	return c.Features.SRTP == SRTPRequired
}

// API holds a customer's call-control API credentials. Apps send Token
// with every request; a customer without one refuses every request.
type API struct {
	Token string
	Line  int // line of the token
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,256}$`)

func (d *decoder) api(n *yaml.Node) API {
	f, _ := d.mapping(n, "api", "token")
	a := API{Token: d.str(f, "token", false)}
	if v := f.vals["token"]; v != nil {
		a.Line = v.Line
	}
	if a.Token != "" && !tokenRE.MatchString(a.Token) {
		d.errorf(f.vals["token"], "api token: want 16 to 256 letters, digits or ._~+/=-")
		a.Token = ""
	}
	return a
}

// AutoRetrieve rings a call back to whoever parked it when it waits too long.
type AutoRetrieve struct {
	Enabled   bool
	After     time.Duration // default wait; a Slot's Timeout overrides it
	Ring      string        // RingNormal or RingDistinctive
	AlertInfo string        // Alert-Info header sent with RingDistinctive
	Attempts  int
}

// Slot is a named parking place retrieved with the rule's SlotRelease code.
type Slot struct {
	Number  string
	Label   string
	Timeout time.Duration // 0: use AutoRetrieve.After
	Line    int
}

// Ring styles for automatic retrieval.
const (
	RingNormal      = "normal"
	RingDistinctive = "distinctive"
)

// Feature defaults.
const (
	DefaultDialTimeout  = 30 * time.Second
	DefaultRetrieveWait = 120 * time.Second
	DefaultAlertInfo    = "<http://127.0.0.1/Bellcore-dr2>;info=Bellcore-dr2"
	DefaultAttempts     = 3
)

// Account returns the account with extension ext, or nil.
func (c *Customer) Account(ext string) *Account {
	if c == nil {
		return nil
	}
	return c.Accounts[ext]
}

// ParkNumberAllowed reports whether a call may be parked on number n with
// Park+n: n must be an account of the customer unless the rule lets any
// number be used.
func (c *Customer) ParkNumberAllowed(n string) bool {
	if c == nil {
		return false
	}
	return c.Accounts[n] != nil || (c.Rule != nil && c.Rule.ParkAnyNumber)
}

// SlotTimeout is how long a call parked on slot waits before automatic
// retrieval: the slot's own timeout or the customer's default.
func (c *Customer) SlotTimeout(slot string) time.Duration {
	if s := c.Slots[slot]; s != nil && s.Timeout > 0 {
		return s.Timeout
	}
	return c.Features.AutoRetrieve.After
}

var domainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

func (d *decoder) customer(f fields) *Customer {
	c := &Customer{
		File:     d.file,
		Line:     f.line("name").Line,
		Accounts: map[string]*Account{},
		DIDs:     map[string]string{},
		Slots:    map[string]*Slot{},
	}
	c.Name = d.str(f, "name", true)
	if c.Name != "" && !nameRE.MatchString(c.Name) {
		d.errorf(f.vals["name"], "name: %q must be lower-case letters, digits, _ or -", c.Name)
	}
	c.Domain = strings.ToLower(d.str(f, "domain", true))
	c.domainLine = f.line("domain").Line
	if c.Domain != "" && !domainRE.MatchString(c.Domain) {
		d.errorf(f.vals["domain"], "domain: %q is not a host name", c.Domain)
	}
	c.RuleName = d.str(f, "rule", true)
	c.ruleLine = f.line("rule").Line

	c.Features = d.features(f.vals["features"])
	c.API = d.api(f.vals["api"])

	for _, n := range d.seq(f, "accounts") {
		a := d.account(n)
		if a == nil || a.Extension == "" {
			continue
		}
		if prev := c.Accounts[a.Extension]; prev != nil {
			d.errorf(n, "duplicate extension %q (first at line %d)", a.Extension, prev.Line)
			continue
		}
		c.Accounts[a.Extension] = a
	}
	didLines := map[string]int{}
	c.didLines = didLines
	for _, n := range d.seq(f, "dids") {
		df, ok := d.mapping(n, "did", "number", "extension")
		if !ok {
			continue
		}
		num := d.str(df, "number", true)
		ext := d.str(df, "extension", true)
		switch {
		case num == "" || ext == "":
		case !numberRE.MatchString(num):
			d.errorf(df.vals["number"], "did number %q must be digits, optionally after +", num)
		case didLines[num] != 0:
			d.errorf(n, "duplicate did %q (first at line %d)", num, didLines[num])
		case c.Accounts[ext] == nil:
			d.errorf(df.vals["extension"], "did %q: unknown extension %q", num, ext)
		default:
			didLines[num] = n.Line
			c.DIDs[num] = ext
		}
	}

	for _, n := range d.seq(f, "trunks") {
		tf, ok := d.mapping(n, "trunk", "name", "address", "outbound", "username", "password", "caller_id", "register", "register_expiry")
		if !ok {
			continue
		}
		t := &Trunk{Name: d.str(tf, "name", true), Address: d.str(tf, "address", true),
			Outbound: d.str(tf, "outbound", false), Username: d.str(tf, "username", false),
			Password: d.str(tf, "password", false), CallerID: d.str(tf, "caller_id", false),
			Register: d.boolean(tf, "register", false), RegisterExpiry: d.duration(tf, "register_expiry", 0)}
		if t.Address != "" {
			var err error
			if t.prefix, t.port, err = parseTrunkAddress(t.Address); err != nil {
				d.errorf(tf.vals["address"], "trunk %q: address %q: %v", t.Name, t.Address, err)
				continue
			}
		}
		if t.Outbound != "" {
			ap, err := parseOutbound(t.Outbound)
			if err != nil {
				d.errorf(tf.vals["outbound"], "trunk %q: outbound %q: %v", t.Name, t.Outbound, err)
				continue
			}
			t.out = ap
		}
		if _, ok := t.Target(); t.Register && (t.Username == "" || !ok) {
			d.errorf(tf.line("name"), "trunk %q: register needs username, password and an outbound address", t.Name)
		}
		if (t.Username == "") != (t.Password == "") {
			d.errorf(tf.line("name"), "trunk %q: username and password go together", t.Name)
		}
		if t.CallerID != "" && !numberRE.MatchString(t.CallerID) {
			d.errorf(tf.vals["caller_id"], "trunk %q: caller_id %q must be digits, optionally after +", t.Name, t.CallerID)
		}
		for _, o := range c.Trunks {
			if t.Name != "" && o.Name == t.Name {
				d.errorf(tf.line("name"), "duplicate trunk name %q", t.Name)
			}
		}
		if t.Name != "" && t.Address != "" {
			c.Trunks = append(c.Trunks, t)
		}
	}

	for _, n := range d.seq(f, "slots") {
		sf, ok := d.mapping(n, "slot", "number", "label", "timeout")
		if !ok {
			continue
		}
		s := &Slot{Line: n.Line, Number: d.str(sf, "number", true), Label: d.str(sf, "label", false)}
		s.Timeout = d.duration(sf, "timeout", 0)
		switch {
		case s.Number == "":
		case !isDigits(s.Number) || len(s.Number) > maxExtension:
			d.errorf(sf.vals["number"], "slot number %q must be 1 to %d digits", s.Number, maxExtension)
		case c.Slots[s.Number] != nil:
			d.errorf(n, "duplicate slot %q (first at line %d)", s.Number, c.Slots[s.Number].Line)
		case c.Accounts[s.Number] != nil:
			d.errorf(n, "slot %q is also an extension (line %d)", s.Number, c.Accounts[s.Number].Line)
		default:
			c.Slots[s.Number] = s
		}
	}
	return c
}

// digest reads features.digest: a list of md5 and sha-256 (default both).
func (d *decoder) digest(f fields) Digest {
	if _, set := f.vals["digest"]; !set {
		return DigestMD5 | DigestSHA256
	}
	var set Digest
	for _, n := range d.seq(f, "digest") {
		v := resolve(n)
		var a Digest
		switch {
		case v == nil || v.Kind != yaml.ScalarNode:
			d.errorf(n, "digest: want a list of md5 and sha-256")
			continue
		case strings.EqualFold(v.Value, "md5"):
			a = DigestMD5
		case strings.EqualFold(v.Value, "sha-256"):
			a = DigestSHA256
		default:
			d.errorf(v, "digest: unknown algorithm %q (want md5 or sha-256)", v.Value)
			continue
		}
		if set&a != 0 {
			d.errorf(v, "digest: %q listed twice", v.Value)
		}
		set |= a
	}
	if set == 0 {
		d.errorf(f.line("digest"), "digest: needs at least one of md5 and sha-256")
		return DigestMD5 | DigestSHA256
	}
	return set
}

func (d *decoder) features(n *yaml.Node) Features {
	f, _ := d.mapping(n, "features", "parking", "api", "dial_timeout", "music", "auto_retrieve", "outside_prefix", "srtp", "digest")
	ft := Features{
		Parking:       d.boolean(f, "parking", true),
		API:           d.boolean(f, "api", false),
		DialTimeout:   d.duration(f, "dial_timeout", DefaultDialTimeout),
		Music:         d.str(f, "music", false),
		OutsidePrefix: d.str(f, "outside_prefix", false),
		SRTP:          d.enum(f, "srtp", SRTPOptional, SRTPOptional, SRTPRequired),
		Digest:        d.digest(f),
	}
	if p := ft.OutsidePrefix; p != "" && (!isDigits(p) || len(p) > 3) {
		d.errorf(f.vals["outside_prefix"], "outside_prefix: %q must be 1 to 3 digits", p)
		ft.OutsidePrefix = ""
	}
	ar, _ := d.mapping(f.vals["auto_retrieve"], "auto_retrieve", "enabled", "after", "ring", "alert_info", "attempts")
	ft.AutoRetrieve = AutoRetrieve{
		Enabled:   d.boolean(ar, "enabled", false),
		After:     d.duration(ar, "after", DefaultRetrieveWait),
		Ring:      d.enum(ar, "ring", RingNormal, RingNormal, RingDistinctive),
		AlertInfo: d.str(ar, "alert_info", false),
		Attempts:  d.integer(ar, "attempts", DefaultAttempts, 1, 10),
	}
	if ft.AutoRetrieve.AlertInfo == "" {
		ft.AutoRetrieve.AlertInfo = DefaultAlertInfo
	}
	return ft
}
