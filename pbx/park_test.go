package pbx_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/core"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// connect makes from dial to's extension and to answer; it returns both ends.
func connect(t *testing.T, from, to *pbxtest.Phone) (caller, callee *pbxtest.Call) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type answer struct {
		c   *pbxtest.Call
		err error
	}
	answered := make(chan answer, 1)
	// No t in the goroutine: it may outlive a failed Dial.
	go func() { c, err := to.AnswerErr(ctx); answered <- answer{c, err} }()
	caller = from.Dial(t, to.Ext)
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	return caller, a.c
}

// talk checks that tones pass both ways between a and b.
func talk(t *testing.T, a, b *pbxtest.Call) {
	t.Helper()
	a.SendTone(1000)
	b.SendTone(1400)
	b.ExpectTone(t, 1000, 3*time.Second)
	a.ExpectTone(t, 1400, 3*time.Second)
	a.StopTone()
	b.StopTone()
}

// hold puts c on hold (re-INVITE sendonly) and waits until p's core
// reports it: call.held.
func hold(t *testing.T, p *pbxtest.PBX, c *pbxtest.Call) {
	t.Helper()
	c.Hold(t)
	p.Events.NextWithin(t, 3*time.Second, events.CallHeld, pbxtest.Customer("demo"))
}

// parkAndRetrieve parks the far end of cp (cc, its caller) at *70333 by
// REFER, checks cc hears the hold stream, and has by retrieve it with
// *71333: the returned call talks with cc.
func parkAndRetrieve(t *testing.T, p *pbxtest.PBX, cc, cp *pbxtest.Call, by *pbxtest.Phone) *pbxtest.Call {
	t.Helper()
	cp.Park(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cc.ExpectAudio(t, time.Second)
	cr := by.Dial(t, "*71333")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	talk(t, cc, cr)
	return cr
}

// confirmation checks that the parker's call got a spoken prompt of about
// the expected length, then was hung up by the PBX.
func confirmation(t *testing.T, c *pbxtest.Call, min time.Duration) {
	t.Helper()
	n, d := c.AudioUntilEnd(t, 15*time.Second)
	if d < min || n < int(min/(20*time.Millisecond))*8/10 {
		t.Fatalf("prompt: %d packets over %s, want at least %s", n, d, min)
	}
	t.Logf("prompt: %d packets over %s", n, d)
}

func TestParkByHoldAndDialThenRetrieve(t *testing.T) {
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	other := p.Phone(t, "demo", "202")

	cc, cj := connect(t, client, john)
	talk(t, cc, cj)

	hold(t, p, cj)
	cc.ExpectMusic(t, 3*time.Second)
	cc.ResetGap()

	park := john.Dial(t, "*70333")
	e := p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	if e.Park.Kind != "extension" || e.Park.Code != "*71333" || e.Park.Parker != "333" || e.Customer != "demo" {
		t.Fatalf("call.parked = %+v", e.Park)
	}
	// "Your call is parked. To retrieve it, dial star seven one three three three."
	confirmation(t, park, 3*time.Second)
	cj.ExpectEnded(t, 5*time.Second)

	// The client heard music all along, without a gap at the handover.
	cc.ExpectAudio(t, time.Second)
	if gap := cc.MaxGap(); gap > 60*time.Millisecond {
		t.Errorf("music gap of %s while parking", gap)
	} else {
		t.Logf("longest music gap while parking: %s", gap)
	}

	// Anyone of the customer retrieves with *71333.
	cr := other.Dial(t, "*71333")
	r := p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	if r.Park.By != "202" {
		t.Fatalf("retrieved by %q, want 202", r.Park.By)
	}
	// The retriever's phone is told it talks to the caller (not to
	// "*71333"), the caller's that 202 picked up.
	if id := cr.WaitIdentity(t, 3*time.Second); !strings.Contains(id, "<sip:201@") {
		t.Errorf("retriever shown %q, want the caller 201", id)
	}
	if id := cc.WaitIdentity(t, 3*time.Second); !strings.Contains(id, "<sip:202@") {
		t.Errorf("caller shown %q, want the retriever 202", id)
	}
	talk(t, cc, cr)
	cr.Hangup()
	cc.ExpectEnded(t, 5*time.Second)
}

func TestParkByReferAndRetrieveOwn(t *testing.T) {
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")

	cc, cj := connect(t, client, john)
	cj.Park(t, "*70333")
	cj.ExpectEnded(t, 5*time.Second)
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cc.ExpectAudio(t, time.Second)

	// *71 alone retrieves the call parked on the dialing phone's extension.
	cr := john.Dial(t, "*71")
	p.Events.Next(t, events.CallRetrieved, pbxtest.Park("333"))
	talk(t, cc, cr)
}

func TestParkAnyExtensionAndRandom(t *testing.T) {
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	client2 := p.Phone(t, "demo", "200")
	john := p.Phone(t, "demo", "333")
	other := p.Phone(t, "demo", "202")

	// Park on 999, an extension not in the call.
	cc, cj := connect(t, client, john)
	cj.Hold(t)
	confirmationCall := john.Dial(t, "*70999")
	p.Events.Next(t, events.CallParked, pbxtest.Park("999"))
	confirmation(t, confirmationCall, 3*time.Second)

	// *70 alone: a random number, announced with a star.
	cc2, cj2 := connect(t, client2, john)
	cj2.Hold(t)
	rnd := john.Dial(t, "*70")
	e := p.Events.Wait(t, 5*time.Second, "random park", func(e *events.Event) bool {
		return e.Type == events.CallParked && e.Park != nil && e.Park.Kind == "random"
	})
	n := e.Park.Number
	if len(n) != 4 || e.Park.Code != "*71*"+n {
		t.Fatalf("random park number %q code %q", n, e.Park.Code)
	}
	confirmation(t, rnd, 3*time.Second)

	// The random number is not an extension: *71NNNN finds nothing...
	miss := other.Dial(t, "*71"+n)
	miss.AudioUntilEnd(t, 10*time.Second)
	// ...*71*NNNN retrieves it.
	cr := other.Dial(t, "*71*"+n)
	talk(t, cc2, cr)
	cr2 := other.Dial(t, "*71999")
	talk(t, cc, cr2)
}

func TestParkErrorsAreAnnounced(t *testing.T) {
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	client2 := p.Phone(t, "demo", "200")
	john := p.Phone(t, "demo", "333")

	// Park code with no held call: announcement, then hang up.
	c := john.Dial(t, "*70333")
	n, _ := c.AudioUntilEnd(t, 10*time.Second)
	if n == 0 {
		t.Fatal("no announcement for park without a held call")
	}
	// Retrieve with nothing parked: announcement.
	c = john.Dial(t, "*71444")
	if n, _ := c.AudioUntilEnd(t, 10*time.Second); n == 0 {
		t.Fatal("no announcement for retrieve with nothing parked")
	}
	// A number that is not an extension (park_any_number is off).
	cc, cj := connect(t, client, john)
	cj.Hold(t)
	c = john.Dial(t, "*70555")
	c.AudioUntilEnd(t, 10*time.Second)

	// Number busy: the second caller stays on hold with John, nothing lost.
	c = john.Dial(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	c.AudioUntilEnd(t, 15*time.Second)
	cc2, cj2 := connect(t, client2, john)
	cj2.Hold(t)
	c = john.Dial(t, "*70333")
	c.AudioUntilEnd(t, 10*time.Second)
	select {
	case <-cj2.Ended():
		t.Fatal("John's held call was dropped after 'number busy'")
	case <-cc2.Ended():
		t.Fatal("the caller was dropped after 'number busy'")
	default:
	}
	cc2.ExpectAudio(t, 500*time.Millisecond) // still on hold music
	cj2.Unhold(t)
	talk(t, cc2, cj2)
	// The first call is still parked on 333.
	_ = cc
	if len(p.Control().State().ParkedList("demo")) != 1 {
		t.Fatalf("parked list: %+v", p.Control().State().ParkedList("demo"))
	}
}

func TestParkedCallerHangsUp(t *testing.T) {
	p := pbxtest.Start(t)
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	cc, cj := connect(t, client, john)
	cj.Park(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cc.Hangup()
	p.Events.Next(t, events.CallAbandoned, pbxtest.Park("333"))
	if got := p.Control().State().ParkedList("demo"); len(got) != 0 {
		t.Fatalf("number not freed: %+v", got)
	}
	// The number is free again at once.
	cc, cj = connect(t, client, john)
	cj.Park(t, "*70333")
	cc.ExpectAudio(t, 500*time.Millisecond)
}

func TestTenantIsolation(t *testing.T) {
	p := pbxtest.Start(t)
	aClient := p.Phone(t, "acme", "201")
	aJohn := p.Phone(t, "acme", "333")
	dJohn := p.Phone(t, "demo", "333")

	cc, cj := connect(t, aClient, aJohn)
	cj.Park(t, "*70333")
	p.Events.Wait(t, 5*time.Second, "acme parked", func(e *events.Event) bool {
		return e.Type == events.CallParked && e.Customer == "acme"
	})
	// demo's 333 dials the same code: nothing parked for demo.
	c := dJohn.Dial(t, "*71333")
	c.AudioUntilEnd(t, 10*time.Second)
	if got := p.Control().State().ParkedList("acme"); len(got) != 1 {
		t.Fatalf("acme's parked call was touched: %+v", got)
	}
	cc.ExpectAudio(t, 500*time.Millisecond)
	// acme retrieves its own call.
	cr := aJohn.Dial(t, "*71")
	talk(t, cc, cr)
}

// writeDialplans writes a dialplan tree for a test from the sample with
// edits applied (old -> new) to the named customer file.
func writeDialplans(t testing.TB, file string, edits ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := pbxtest.SampleDialplans()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s := string(b)
		if rel == file {
			for i := 0; i+1 < len(edits); i += 2 {
				if !strings.Contains(s, edits[i]) {
					t.Fatalf("%s has no %q", file, edits[i])
				}
				s = strings.Replace(s, edits[i], edits[i+1], 1)
			}
		}
		return os.WriteFile(filepath.Join(dir, rel), []byte(s), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestParkNotPermitted(t *testing.T) {
	// 999 may retrieve but not park; acme has parking switched off.
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		`permissions: [park, retrieve]`, `permissions: [retrieve]`)
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	client := p.Phone(t, "demo", "201")
	w := p.Phone(t, "demo", "999")
	cc, cw := connect(t, client, w)
	if code := cw.Transfer(t, "*70999"); code != 403 {
		t.Fatalf("REFER park without permission: NOTIFY %d, want 403", code)
	}
	// The call is untouched.
	talk(t, cc, cw)
	cw.Hold(t)
	c := w.Dial(t, "*70999")
	if n, _ := c.AudioUntilEnd(t, 10*time.Second); n == 0 {
		t.Fatal("no 'not permitted' announcement")
	}
	if got := p.Control().State().ParkedList("demo"); len(got) != 0 {
		t.Fatalf("parked without permission: %+v", got)
	}
}

func TestParkCustomPrefixes(t *testing.T) {
	dir := writeDialplans(t, filepath.Join("customers", "acme.yaml"), `rule: pbx-default`, `rule: pbx-64`)
	p := pbxtest.Start(t, pbxtest.WithDialplans(dir))
	client := p.Phone(t, "acme", "201")
	john := p.Phone(t, "acme", "333")
	other := p.Phone(t, "acme", "200")
	cc, cj := connect(t, client, john)
	cj.Hold(t)
	c := john.Dial(t, "64333")
	e := p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	if e.Park.Code != "65333" {
		t.Fatalf("code %q, want 65333", e.Park.Code)
	}
	confirmation(t, c, 2*time.Second)
	cr := other.Dial(t, "65333")
	talk(t, cc, cr)
}

// answeredSlowly connects 201 (the caller, cc) with 333 (cj) on a PBX
// whose core takes 300 ms between a dial's answer and its bridge (a
// busy machine): the phones have their 200 OK and ACK, and act, while
// the core is still bridging them.
func answeredSlowly(t *testing.T) (p *pbxtest.PBX, cc, cj *pbxtest.Call) {
	t.Helper()
	p = pbxtest.Start(t, func(c *pbx.Config) {
		c.CoreTesting = &core.TestingKnobs{BeforeDialBridge: func() { time.Sleep(300 * time.Millisecond) }}
	})
	client := p.Phone(t, "demo", "201")
	john := p.Phone(t, "demo", "333")
	cc, cj = connect(t, client, john)
	return p, cc, cj
}

// TestParkTheMomentTheCallIsAnswered: 333 parks its caller by REFER
// as soon as it has the ACK, while the core is still bridging the two:
// the caller hears music once parked, not the silence of a bridge to the
// parker, who has gone. The park's music waits for the bridge; applied
// before it, the bridge undid it.
func TestParkTheMomentTheCallIsAnswered(t *testing.T) {
	p, cc, cj := answeredSlowly(t)
	cj.Park(t, "*70333")
	p.Events.Next(t, events.CallParked, pbxtest.Park("333"))
	cj.ExpectEnded(t, 5*time.Second)
	cc.ExpectMusic(t, 3*time.Second)
	cc.ExpectAudio(t, time.Second) // and it goes on
}

// TestCallerHangsUpWhileTheAnswerIsBridged: the caller hangs up while
// the core still bridges it with the extension that has just answered:
// the extension's call is ended at once with BYE, after its answer, and
// no leg is left.
func TestCallerHangsUpWhileTheAnswerIsBridged(t *testing.T) {
	p, cc, cj := answeredSlowly(t)
	cc.Hangup()
	cj.ExpectEnded(t, 2*time.Second)
	p.WaitNoLegs(t, 5*time.Second)
}
