package pbx_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// consoleDialplans: demo's 201 may be rung by the console (call_control),
// and acme has the API (so its console) on.
func consoleDialplans(t *testing.T) string {
	t.Helper()
	dir := writeDialplans(t, filepath.Join("customers", "demo.yaml"),
		"    name: Sales\n    password: \"secret201\"\n",
		"    name: Sales\n    password: \"secret201\"\n    permissions: [park, retrieve, call_control]\n")
	acme := filepath.Join(dir, "customers", "acme.yaml")
	b, err := os.ReadFile(acme)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acme, []byte(strings.Replace(string(b), "api: false", "api: true", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// signIn fills in the sign-in form and waits for the board.
func signIn(t *testing.T, s *pbxtest.Session, customer, user, password string) {
	t.Helper()
	fillSignIn(t, s, customer, user, password)
	s.Do(chromedp.WaitVisible(chromedp.CSS("#slots .card")))
	s.WaitText("#conn", "live", 5*time.Second)
}

// fillSignIn types into the sign-in form and submits it.
func fillSignIn(t *testing.T, s *pbxtest.Session, customer, user, password string) {
	t.Helper()
	s.Do(chromedp.WaitVisible(chromedp.CSS("#in-customer")))
	pbxtest.Eval[bool](s, fmt.Sprintf(`(() => {
		document.querySelector("#signin-error").textContent = "";
		document.querySelector("#in-customer").value = %q;
		document.querySelector("#in-user").value = %q;
		document.querySelector("#in-password").value = %q;
		return true;
	})()`, customer, user, password))
	s.Do(chromedp.Click(chromedp.CSS("#in-submit")))
}

// screenshots go to $CALLPARK_SCREENSHOTS (the README's come from there:
// CALLPARK_SCREENSHOTS=$PWD/docs go test -run TestConsole ./pbx/).
func screenshot(t *testing.T, s *pbxtest.Session, name string) {
	dir := os.Getenv("CALLPARK_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	s.Screenshot(filepath.Join(dir, name))
}

// TestConsoleBoard: a receptionist signs in to the web console, sees a
// call a phone parked, drags it onto an extension that then talks to the
// caller, parks her own call with a button, and the board catches up with
// a park made while its event stream was down.
func TestConsoleBoard(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialplans(consoleDialplans(t)), pbxtest.WithConsole())
	reception := p.Phone(t, "demo", "200")
	sales := p.Phone(t, "demo", "201")
	client := p.Phone(t, "demo", "202")
	john := p.Phone(t, "demo", "333")
	lamps := p.Watcher(t, "demo", "999")
	lamps.Subscribe(t, "711", time.Hour)
	lamps.Subscribe(t, "712", time.Hour)
	lamps.WaitLamp(t, "711", false, 3*time.Second)
	lamps.WaitLamp(t, "712", false, 3*time.Second)

	browser := pbxtest.NewBrowser(t)
	desk := browser.Session(t, p.WebURL())
	signIn(t, desk, "demo", "200", "secret200")
	desk.WaitText("#who", "Reception", time.Second)
	desk.WaitText("#slot-1", "free", time.Second)
	desk.WaitText("#ext-201", "idle", time.Second)
	screenshot(t, desk, "console-idle.png")

	// John parks his caller on slot 1 with the slot's BLF key: the card
	// shows the caller within a second, and its timer runs.
	cc, cj := connect(t, client, john)
	cj.Park(t, "711")
	p.Events.Next(t, "call.parked", pbxtest.Park("1"))
	parkedAt := time.Now()
	desk.WaitText("#slot-1 .caller", "202", time.Second)
	if d := time.Since(parkedAt); d > time.Second {
		t.Errorf("board showed the park after %s", d)
	}
	desk.WaitText("#slot-1", "parked by 333", time.Second)
	first := desk.Text("#slot-1 .timer")
	deadline := time.Now().Add(3 * time.Second)
	for desk.Text("#slot-1 .timer") == first {
		if time.Now().After(deadline) {
			t.Fatalf("the parked timer stays at %q", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	desk.WaitText("#slot-1 .countdown", ":", time.Second)

	// Drag the card onto 201: 201 rings, answers and hears the caller.
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- sales.Answer(t, 5*time.Second) }()
	desk.Do(chromedp.DragAndDrop(chromedp.CSS("#slot-1"), chromedp.CSS("#ext-201")))
	cs := <-answered
	talk(t, cc, cs)
	desk.WaitText("#slot-1", "free", 2*time.Second)
	desk.WaitText("#ext-201", "in a call", 2*time.Second)

	// The receptionist's own call, parked from the page with a button: her
	// phone's call ends, the caller hears music, a BLF lamp turns busy.
	cjn, crc := connect(t, john, reception)
	desk.WaitText("#mycalls", "333", 2*time.Second)
	desk.Do(chromedp.Click(chromedp.CSS(`#mycalls [data-park-slot="2"]`)))
	crc.ExpectEnded(t, 5*time.Second)
	lamps.WaitLamp(t, "712", true, 3*time.Second)
	cjn.ExpectAudio(t, 500*time.Millisecond)
	desk.WaitText("#slot-2 .caller", "333", 2*time.Second)
	screenshot(t, desk, "console-busy.png")

	// Drag the card from slot 2 onto the free slot 1: the call moves, the
	// lamps follow, the caller keeps its music.
	desk.Do(chromedp.DragAndDrop(chromedp.CSS("#slot-2"), chromedp.CSS("#slot-1")))
	desk.WaitText("#slot-1 .caller", "333", 2*time.Second)
	desk.WaitText("#slot-2", "free", time.Second)
	lamps.WaitLamp(t, "711", true, 3*time.Second)
	lamps.WaitLamp(t, "712", false, 3*time.Second)
	cjn.ExpectAudio(t, 500*time.Millisecond)
	if p.Control().State().Parked("demo", state.SlotKey("1")) == nil {
		t.Fatal("the control plane does not have the call on slot 1")
	}

	// The event stream goes down (the browser is offline, the server drops
	// the stream); Sales parks the client meanwhile on extension 201.
	desk.Block("*://*:*/api/events")
	deadline = time.Now().Add(5 * time.Second)
	for p.Console().DropStreams(); !strings.Contains(desk.Text("#conn"), "reconnecting"); p.Console().DropStreams() {
		if time.Now().After(deadline) {
			t.Fatalf("stream still up: %q", desk.Text("#conn"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cs.Park(t, "*70201")
	p.Events.Next(t, "call.parked", pbxtest.Park("201"))
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(desk.Text("#parked"), "202") {
		t.Fatal("the board got the park while offline: the stream was not down")
	}
	desk.Block()
	desk.WaitText("#parked-extension-201 .caller", "202", 5*time.Second)
	desk.WaitText("#conn", "live", 5*time.Second)
	// The stream resumed from the last event the page saw: the notice of
	// the park made while it was down is replayed (JetStream), not lost.
	desk.WaitText("#notices", "201 parked", 5*time.Second)

	// Hang up the caller parked on 201 from the page.
	desk.Do(chromedp.Click(chromedp.CSS(`#parked-extension-201 [data-hangup]`)))
	cc.ExpectEnded(t, 5*time.Second)
	desk.WaitText("#parked", "none", 3*time.Second)
}

// TestConsoleTenancy: a session of acme sees nothing of demo, and its
// forged requests for demo's calls change nothing; a request without the
// session's CSRF token is refused.
func TestConsoleTenancy(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialplans(consoleDialplans(t)), pbxtest.WithConsole())
	client := p.Phone(t, "demo", "202")
	john := p.Phone(t, "demo", "333")
	_, cj := connect(t, client, john)
	cj.Park(t, "711")
	p.Events.Next(t, "call.parked", pbxtest.Park("1"))

	browser := pbxtest.NewBrowser(t)
	demo := browser.Session(t, p.WebURL())
	signIn(t, demo, "demo", "200", "secret200")
	demo.WaitText("#slot-1 .caller", "202", 2*time.Second)

	acme := browser.Session(t, p.WebURL())
	signIn(t, acme, "acme", "", "acme-api-token-9876543210")
	acme.WaitText("#who", "acme", time.Second)
	page := acme.Text("main") + pbxtest.Eval[string](acme, `fetch("/api/board").then((r) => r.text())`)
	leg := p.Control().State().Parked("demo", state.SlotKey("1"))
	if leg == nil {
		t.Fatal("demo's call is not parked")
	}
	// (acme has a 200 and a 333 of its own; the caller 202, the names and
	// the call are demo's.)
	for _, leak := range []string{`"user":"202"`, "Support", "Reception", "Sales", "John", "Line 1", "demo", leg.Channel} {
		if strings.Contains(page, leak) {
			t.Errorf("acme's board shows demo's %q in %q", leak, page)
		}
	}
	// Forged: acme asks for demo's slot 1, by spot and by demo's call id.
	forge := func(s *pbxtest.Session, path, body string, csrf bool) string {
		t.Helper()
		hdr := `"Content-Type": "application/json"`
		if csrf {
			hdr += `, "X-Callpark-CSRF": (await (await fetch("/api/board")).json()).me.csrf`
		}
		return pbxtest.Eval[string](s, fmt.Sprintf(`(async () => {
			const r = await fetch(%q, {method: "POST", headers: {%s}, body: %q});
			return r.status + " " + await r.text();
		})()`, path, hdr, body))
	}
	for _, f := range []struct{ path, body string }{
		{"/api/retrieve", `{"slot":"1","to":"200"}`},
		{"/api/hangup", `{"slot":"1"}`},
		{"/api/park", `{"call_id":"` + leg.Channel + `","slot":"1"}`},
	} {
		got := forge(acme, f.path, f.body, true)
		if strings.HasPrefix(got, "200") {
			t.Errorf("acme %s %s: %s", f.path, f.body, got)
		}
	}
	if got := forge(demo, "/api/hangup", `{"slot":"1"}`, false); !strings.HasPrefix(got, "403") || !strings.Contains(got, "csrf") {
		t.Errorf("hangup without CSRF token: %s", got)
	}
	time.Sleep(200 * time.Millisecond)
	if p.Control().State().Parked("demo", state.SlotKey("1")) == nil {
		t.Fatal("demo's parked call is gone after acme's forged requests")
	}
	demo.WaitText("#slot-1 .caller", "202", time.Second)
}

// TestConsoleSignInFailures: a wrong password is refused with a clear
// message; an address that keeps guessing is shut out, as on SIP.
func TestConsoleSignInFailures(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithConsole())
	browser := pbxtest.NewBrowser(t)
	s := browser.Session(t, p.WebURL())
	try := func(password string) string {
		t.Helper()
		fillSignIn(t, s, "demo", "200", password)
		return s.WaitText("#signin-error", " ", 3*time.Second)
	}
	if msg := try("wrong"); !strings.Contains(msg, "wrong") {
		t.Fatalf("wrong password: %q", msg)
	}
	var msg string
	for i := 0; i < 12 && !strings.Contains(msg, "too many"); i++ {
		msg = try(fmt.Sprintf("guess-%d", i))
	}
	if !strings.Contains(msg, "too many") {
		t.Fatalf("after a dozen guesses: %q", msg)
	}
	// Even the right password is refused from that address now.
	if msg := try("secret200"); !strings.Contains(msg, "too many") {
		t.Fatalf("right password from a banned address: %q", msg)
	}
}

// TestConsoleTablet: on a tablet (768x1024 portrait and 1024x768
// landscape, touch) the board fits the screen: no sideways scrolling, the
// slots, parked calls and extensions all on the page, the park buttons big
// enough for a finger.
func TestConsoleTablet(t *testing.T) {
	p := pbxtest.Start(t, pbxtest.WithDialplans(consoleDialplans(t)), pbxtest.WithConsole())
	p.Phone(t, "demo", "200")
	client := p.Phone(t, "demo", "202")
	john := p.Phone(t, "demo", "333")
	desk := pbxtest.NewBrowser(t).Session(t, p.WebURL())
	signIn(t, desk, "demo", "200", "secret200")
	_, cj := connect(t, client, john)
	cj.Park(t, "711")
	desk.WaitText("#slot-1 .caller", "202", 3*time.Second)
	for _, size := range [][2]int64{{768, 1024}, {1024, 768}} {
		desk.Do(chromedp.EmulateViewport(size[0], size[1], chromedp.EmulateTouch))
		desk.WaitText("#slot-1 .caller", "202", time.Second)
		if over := pbxtest.Eval[bool](desk, `document.documentElement.scrollWidth > window.innerWidth`); over {
			t.Errorf("%dx%d: the board scrolls sideways (%d px wide)", size[0], size[1],
				pbxtest.Eval[int](desk, `document.documentElement.scrollWidth`))
		}
		for _, sel := range []string{"#slots", "#parked", "#extensions"} {
			w := pbxtest.Eval[float64](desk, `document.querySelector("`+sel+`").getBoundingClientRect().right`)
			if w > float64(size[0]) {
				t.Errorf("%dx%d: %s ends at %.0f px, off the screen", size[0], size[1], sel, w)
			}
		}
		small := pbxtest.Eval[int](desk, `[...document.querySelectorAll("button")].filter(b => b.offsetParent && b.getBoundingClientRect().height < 32).length`)
		if small > 0 {
			t.Errorf("%dx%d: %d visible buttons under 32 px high: too small to tap", size[0], size[1], small)
		}
	}
}
