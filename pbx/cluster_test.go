package pbx_test

// A callpark cluster (issue 11): three nodes in this process, each with its
// own SIP port and embedded NATS server, clustered with JetStream. Phones
// register through different nodes; a call parked on one node is retrieved
// through another, lamps light everywhere, and a node that dies takes only
// its own calls with it.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

func TestClusterParkOnARetrieveOnB(t *testing.T) {
	nodes := pbxtest.StartCluster(t, 3)
	a, b := nodes[0], nodes[1]
	client := a.Phone(t, "demo", "201")
	john := a.Phone(t, "demo", "333")
	doctor := b.Phone(t, "demo", "202")

	// John takes a call on node A, holds it and parks it on 333.
	cc, cj := connect(t, client, john)
	talk(t, cc, cj)
	hold(t, a, cj)
	park := john.Dial(t, "*70333")
	e := a.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	if events.NodeOf(e.Call) != "a" {
		t.Fatalf("parked leg %s, want one of node a", e.Call)
	}
	confirmation(t, park, 3*time.Second)
	cc.ExpectAudio(t, time.Second)

	// Apps see the park through the API of any node: a node that does not
	// decide for demo forwards the request to the one that does.
	owner := pbxtest.Owner(nodes, "demo")
	for _, n := range nodes {
		got, err := apiClient(t, n, "demo", "demo-api-token-0123456789").Parked(ctx5(t))
		if err != nil || len(got.Parked) != 1 || got.Parked[0].Number != "333" {
			t.Fatalf("parked calls through node %s (owner %s): %+v, %v", n.Config.Node, owner.Config.Node, got, err)
		}
	}

	// The doctor, registered through node B, retrieves it with *71333.
	cc.ResetGap()
	began := time.Now()
	cr := doctor.Dial(t, "*71333")
	cr.SendTone(1400)
	r := b.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	if r.Park.By != "202" {
		t.Fatalf("retrieved by %q, want 202", r.Park.By)
	}
	cc.ExpectTone(t, 1400, 3*time.Second)
	t.Logf("cross-node retrieve: caller hears the doctor %s after the doctor dialed", time.Since(began).Round(time.Millisecond))
	cr.StopTone()
	if gap := cc.MaxGap(); gap > 60*time.Millisecond {
		t.Errorf("the parked caller heard a gap of %s at the handover", gap)
	} else {
		t.Logf("longest gap heard by the caller across the handover: %s", gap)
	}
	talk(t, cc, cr)
	cr.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
	for _, n := range nodes {
		n.WaitNoLegs(t, 5*time.Second)
	}
}

// TestClusterLampOnCFollowsParkOnA: a slot key on a phone registered
// through node C lights when a call is parked into the slot on node A, and
// goes out when the call is retrieved through C.
func TestClusterLampOnCFollowsParkOnA(t *testing.T) {
	nodes := pbxtest.StartCluster(t, 3)
	a, c := nodes[0], nodes[2]
	c.WaitLampKnown(t, "demo", "711")
	w := c.Watcher(t, "demo", "202")
	w.Subscribe(t, "711", 0)

	client := a.Phone(t, "demo", "201")
	john := a.Phone(t, "demo", "333")
	cc, cj := connect(t, client, john)
	sent := time.Now()
	cj.Park(t, "711")
	l := w.WaitLamp(t, "711", true, 3*time.Second)
	t.Logf("lamp on node c lit %s after the REFER on node a", l.At.Sub(sent).Round(time.Millisecond))
	if l.Identity != "sip:201@demo.callpark.test" {
		t.Fatalf("busy lamp: %+v", l)
	}

	// The same key retrieves: 202 dials 711 through C.
	doctor := c.Phone(t, "demo", "202")
	cr := doctor.Dial(t, "711")
	c.Events.Next(t, events.CallRetrieved, pbxtest.Park("1"))
	w.WaitLamp(t, "711", false, 3*time.Second)
	talk(t, cc, cr)
	cr.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
}

// TestClusterRetrieveRaceOneWinner: phones on nodes B and C retrieve the
// same call, parked on node A, at the same moment: exactly one gets it,
// 50 times.
func TestClusterRetrieveRaceOneWinner(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	nodes := pbxtest.StartCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const rounds, perRound = 5, 10
	raceRetrievals(t, retrievalRace{
		client: a.Phone(t, "demo", "201"), parker: a.Phone(t, "demo", "333"),
		left: b.Phone(t, "demo", "202"), right: c.Phone(t, "demo", "200"),
		owner: pbxtest.Owner(nodes, "demo"), events: a,
	}, rounds, perRound)
	t.Logf("%d retrievals raced across nodes b and c, one winner each", rounds*perRound)
}

// TestClusterAutoReturnAcrossNodes: the caller on node A reaches John
// through node B (a dial across nodes), John parks it; the automatic return
// rings John through B with the distinctive Alert-Info.
func TestClusterAutoReturnAcrossNodes(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		"after: 120s", "after: 2s", "dial_timeout: 30s", "dial_timeout: 4s", "ring: normal", "ring: distinctive")
	nodes := pbxtest.StartCluster(t, 3, pbxtest.WithDialplans(dir))
	a, b := nodes[0], nodes[1]
	client := a.Phone(t, "demo", "201")
	john := b.Phone(t, "demo", "333")
	pbxtest.WaitLocated(t, nodes, b, "demo", "333")

	cc, pe := parkOwn(t, a, client, john)
	if events.NodeOf(pe.Call) != "a" {
		t.Fatalf("parked leg %s, want one of node a", pe.Call)
	}
	parkedAt := time.Now()
	ring := john.Ringing(t, 5*time.Second)
	t.Logf("return rang John through node b %s after the park", time.Since(parkedAt).Round(time.Millisecond))
	checkReturnInvite(t, ring, pe.Park, dialplans.DefaultAlertInfo)
	ring.Answer(t)
	a.Events.Next(t, events.CallReturned, pbxtest.Park("333"))
	talk(t, cc, ring)
	ring.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
}

// TestClusterNodeLoss kills the node deciding for demo (no BYE, no
// goodbye). A call parked on it is reported lost and its slot freed; a call
// parked on another node is taken over with its automatic return, which
// still rings; the other nodes keep serving.
func TestClusterNodeLoss(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		"after: 120s", "after: 8s", "dial_timeout: 30s", "dial_timeout: 4s")
	nodes := pbxtest.StartCluster(t, 3, pbxtest.WithDialplans(dir))
	dead := pbxtest.Owner(nodes, "demo")
	var alive []*pbxtest.PBX
	for _, n := range nodes {
		if n != dead {
			alive = append(alive, n)
		}
	}
	m, k := alive[0], alive[1]
	t.Logf("node %s decides for demo and will die; %s and %s stay", dead.Config.Node, m.Config.Node, k.Config.Node)

	// On the doomed node: a call parked in slot 1, watched from node k.
	k.WaitLampKnown(t, "demo", "711")
	w := k.Watcher(t, "demo", "200")
	w.Subscribe(t, "711", 0)
	dc, dj := connect(t, dead.Phone(t, "demo", "201"), dead.Phone(t, "demo", "202"))
	dj.Park(t, "711")
	w.WaitLamp(t, "711", true, 3*time.Second)
	_ = dc

	// On node m: John parks a call on his own extension; it returns in 8 s.
	client := m.Phone(t, "demo", "999")
	john := m.Phone(t, "demo", "333")
	cc, _ := parkOwn(t, m, client, john)
	parkedAt := time.Now()

	killed := time.Now()
	dead.Kill(t)

	lost := m.Events.NextWithin(t, 10*time.Second, events.CallLost, pbxtest.Customer("demo"))
	t.Logf("call.lost %s after the kill", time.Since(killed).Round(time.Millisecond))
	if lost.Park == nil || lost.Park.Number != "1" {
		t.Fatalf("call.lost %+v", lost)
	}
	m.Events.NextWithin(t, 5*time.Second, events.SlotFree, pbxtest.Customer("demo"), pbxtest.Slot("1"))
	w.WaitLamp(t, "711", false, 5*time.Second)
	if pbxtest.Owner(alive, "demo") == nil {
		t.Fatal("nobody took demo's partition over")
	}
	t.Logf("demo taken over by node %s", pbxtest.Owner(alive, "demo").Config.Node)

	// The caller parked on m kept its music, and its return still fires.
	cc.ExpectAudio(t, time.Second)
	ring := john.Ringing(t, 12*time.Second)
	if d := time.Since(parkedAt); d < 7*time.Second {
		t.Fatalf("returned after %s, before its 8s", d)
	}
	ring.Answer(t)
	talk(t, cc, ring)
	ring.Hangup()
	cc.ExpectEnded(t, 5*time.Second)

	// The survivors keep serving new calls across them.
	caller, callee := m.Phone(t, "demo", "201"), k.Phone(t, "demo", "202")
	pbxtest.WaitLocated(t, alive, k, "demo", "202")
	x, y := connect(t, caller, callee)
	talk(t, x, y)
	x.Hangup()
	y.ExpectEnded(t, 5*time.Second)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterConsoleFollowsTheOwner: a receptionist opens the console of a
// node that does not decide for her customer; signing in sends the page to
// the console of the node that does, where the board shows a call parked
// on yet another node.
func TestClusterConsoleFollowsTheOwner(t *testing.T) {
	nodes := pbxtest.StartCluster(t, 3, pbxtest.WithDialplans(consoleDialplans(t)), pbxtest.WithConsole())
	owner := pbxtest.Owner(nodes, "demo")
	var other *pbxtest.PBX
	for _, n := range nodes {
		if n != owner {
			other = n
		}
	}
	waitFor(t, 5*time.Second, "the owner's console URL announced", func() bool {
		for _, a := range other.Nodes().List() {
			if a.Node == owner.Config.Node && a.Web == owner.WebURL() {
				return true
			}
		}
		return false
	})
	browser := pbxtest.NewBrowser(t)
	s := browser.Session(t, other.WebURL())
	fillSignIn(t, s, "demo", "200", "secret200")
	waitFor(t, 5*time.Second, "the page moves to the owner's console", func() bool {
		return strings.HasPrefix(pbxtest.Eval[string](s, "location.href"), owner.WebURL()+"/")
	})
	s.Do(chromedp.WaitVisible(chromedp.CSS("#in-customer")))
	if c := pbxtest.Eval[string](s, `document.querySelector("#in-customer").value`); c != "demo" {
		t.Fatalf("customer field %q after the move, want demo", c)
	}
	t.Logf("console of node %s sent the sign-in to node %s", other.Config.Node, owner.Config.Node)
	signIn(t, s, "demo", "200", "secret200")

	client := other.Phone(t, "demo", "202")
	john := other.Phone(t, "demo", "333")
	_, cj := connect(t, client, john)
	cj.Park(t, "711")
	s.WaitText("#slot-1 .caller", "202", 3*time.Second)
}
