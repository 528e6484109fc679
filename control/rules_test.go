package control

import (
	"os"
	"strings"
	"testing"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// TestCustomerCodes: a customer whose rule parks with 64 and retrieves with
// 65 hears its own codes spelled, and may park on any number.
func TestCustomerCodes(t *testing.T) {
	h := newHarness(t)
	client, john := h.talkAndHold("sixty", "client", "333")
	h.send(inbound("sixty", "j2", "333", "644999"))
	h.expect("unbridge "+client, "answer j2", "play j2 parked,digit-6,digit-5,digit-4,digit-9,digit-9,digit-9 +hangup", "hangup "+john)
	if e := h.onlyEvent(events.CallParked); e.Park.Code != "654999" || e.Park.Number != "4999" {
		t.Fatalf("park %+v", e.Park)
	}
	// *70/*71 mean nothing here.
	h.send(inbound("sixty", "r0", "200", "*714999"))
	h.expect("reject r0 404")
	h.send(inbound("sixty", "r", "200", "654999"))
	h.expect(retrievedBy("r", client)...)
	h.onlyEvent(events.CallRetrieved)

	client2, _ := h.talkAndHold("sixty", "client2", "333")
	h.send(inbound("sixty", "j3", "333", "64"))
	e := h.onlyEvent(events.CallParked)
	if len(e.Park.Number) != 3 || e.Park.Code != "65*"+e.Park.Number {
		t.Fatalf("random park %+v", e.Park)
	}
	h.take()
	h.send(inbound("sixty", "r2", "200", "65*"+e.Park.Number))
	h.expect(retrievedBy("r2", client2)...)
}

// TestSampleDialplans parks and retrieves with the sample dialplans that
// `make run` serves.
func TestSampleDialplans(t *testing.T) {
	const dir = "../dialplans/sample"
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no sample dialplans")
	}
	set, err := dialplans.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := harnessOn(t, func() *dialplans.Set { return set })
	for _, cust := range []string{"demo", "acme"} {
		client, john := h.talkAndHold(cust, "client-"+cust, "333")
		h.send(inbound(cust, "j2-"+cust, "333", "*70333"))
		h.expect("unbridge "+client, "answer j2-"+cust, "play j2-"+cust+" "+strings.Join(append([]string{"parked"}, spell("*71333")...), ",")+" +hangup", "hangup "+john)
		h.send(inbound(cust, "r-"+cust, "201", "*71333"))
		h.expect(retrievedBy("r-"+cust, client)...)
	}
}
