package pbx_test

// Outside calls through the customer's trunks (issue 13): sipp plays the
// carriers, Go phones the extensions.

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// outsideDialplans gives demo the outside prefix 9 and trunks (YAML list
// items) tried in order before the sample's inbound-only carrier.
func outsideDialplans(t *testing.T, trunks string) string {
	return writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		"dial_timeout: 30s", "dial_timeout: 30s\n  outside_prefix: \"9\"",
		"  - name: carrier\n", trunks+"  - name: carrier\n")
}

// carrierKeys are the credentials uas_carrier.xml expects.
func carrierKeys() []string { return []string{"-key", "user", "acme", "-key", "pass", "s3cret"} }

// TestOutsideCallParkRetrieve: 201 dials 9 + 0049 30 123456; the carrier
// gets INVITE sip:+4930123456 from demo's DID, challenges it and gets
// the trunk's credentials; the media passes (sipp echoes it); 201 parks
// the call, 202 retrieves it and talks to the carrier.
func TestOutsideCallParkRetrieve(t *testing.T) {
	sippBinary(t)
	port := pbxtest.FreePort(t)
	dir := outsideDialplans(t, fmt.Sprintf(
		"  - name: primary\n    address: 127.0.0.1:%d\n    username: acme\n    password: s3cret\n", port))
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	carrier := startSipp(t, "uas_carrier.xml", sippOpts{Port: port, Echo: true}, carrierKeys()...)
	sales := p.Phone(t, "demo", "201")
	other := p.Phone(t, "demo", "202")

	c := sales.Dial(t, "9004930123456")
	c.SendTone(1000)
	c.ExpectTone(t, 1000, 3*time.Second) // there and back through the carrier
	c.StopTone()

	hold(t, p, c)
	park := sales.Dial(t, "*70333")
	e := p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	if e.Park.Parked.User != "+4930123456" {
		t.Errorf("parked party %+v, want the outside number", e.Park.Parked)
	}
	confirmation(t, park, 3*time.Second)

	cr := other.Dial(t, "*71333")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	cr.SendTone(1400)
	cr.ExpectTone(t, 1400, 3*time.Second)
	cr.Hangup()
	carrier.wait(t)
}

// TestOutsideCallFailsOver: the first trunk's carrier answers 503, the
// second one takes the call.
func TestOutsideCallFailsOver(t *testing.T) {
	sippBinary(t)
	down, up := pbxtest.FreePort(t), pbxtest.FreePort(t)
	dir := outsideDialplans(t, fmt.Sprintf(
		"  - name: primary\n    address: 127.0.0.1:%d\n"+
			"  - name: backup\n    address: 127.0.0.1:%d\n    username: acme\n    password: s3cret\n", down, up))
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	primary := startSipp(t, "uas_unavailable.xml", sippOpts{Port: down})
	backup := startSipp(t, "uas_carrier.xml", sippOpts{Port: up, Echo: true}, carrierKeys()...)
	sales := p.Phone(t, "demo", "201")

	c := sales.Dial(t, "+4930123456")
	primary.wait(t)
	c.SendTone(1000)
	c.ExpectTone(t, 1000, 3*time.Second)
	c.Hangup()
	backup.wait(t)
}

// TestOutsideCallBarred: an account whose permissions leave out "outside"
// gets 403 for an outside number, and no carrier is called.
func TestOutsideCallBarred(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		"    name: Warehouse\n    password: \"secret999\"\n    permissions: [park, retrieve]",
		"    name: Warehouse\n    password: \"secret999\"\n    permissions: [park, retrieve]")
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	warehouse := p.Phone(t, "demo", "999")
	if _, err := warehouse.DialErr(t.Context(), "+4930123456"); pbxtest.StatusOf(err) != 403 {
		t.Fatalf("barred outside call: %v, want 403", err)
	}
}

// TestTrunkRegisters: a trunk with register: true registers to the
// carrier's registrar (sipp), answers its challenge, and refreshes before
// the 2 s granted run out; the state shows in callpark_trunk_registered
// and trunk.registered events.
func TestTrunkRegisters(t *testing.T) {
	sippBinary(t)
	port := pbxtest.FreePort(t)
	registrar := startSipp(t, "uas_registrar.xml", sippOpts{Port: port}, carrierKeys()...)
	dir := outsideDialplans(t, fmt.Sprintf(
		"  - name: primary\n    address: 127.0.0.1:%d\n    username: acme\n    password: s3cret\n    register: true\n    register_expiry: 60s\n", port))
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	// The first registration may come before the test's event recorder
	// listens: any one will do here; sipp checks that the refresh comes
	// within the 2 s it granted (its scenario times out otherwise).
	e := p.Events.NextWithin(t, 5*time.Second, events.TrunkRegistered, pbxtest.Customer("demo"))
	if e.Trunk != "primary" {
		t.Fatalf("trunk.registered %+v", e)
	}
	if v := p.Counter("callpark_trunk_registered", map[string]string{"customer": "demo", "trunk": "primary"}); v != 1 {
		t.Fatalf("callpark_trunk_registered = %v, want 1", v)
	}
	registrar.wait(t)
}
