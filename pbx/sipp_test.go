package pbx_test

// sipp, an independent SIP tester, drives the main flows against a real
// callpark: register, call + hold + resume + BYE, park by hold-and-dial,
// park by REFER, retrieve. The scenarios are in testdata/sipp (each file
// says what it sends and expects). Where a flow needs a second party, it is
// a pbxtest (diago) phone, which also checks the audio: sipp runs with
// -rtp_echo, so what the Go phone sends comes back to it only if RTP flows
// both ways between callpark and sipp.
//
// Without sipp installed these tests are skipped, unless
// CALLPARK_REQUIRE_SIPP=1 (set by `make test`), which makes it a failure.
// A failed scenario prints sipp's error log, <log> lines and every SIP
// message it sent and received; CALLPARK_SIPP_LOG=1 prints them for passing
// runs too.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/pbx/pbxtest"
)

const sippDomain = "demo.callpark.test"

// sippBinary finds sipp, or skips (fails under CALLPARK_REQUIRE_SIPP=1).
func sippBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CALLPARK_REQUIRE_SIPP") == "1" {
			t.Fatalf("sipp is required (CALLPARK_REQUIRE_SIPP=1) but not installed: apt-get install -y sip-tester (%v)", err)
		}
		t.Skip("sipp not installed (apt-get install -y sip-tester)")
	}
	return path
}

// sippRun is one sipp process running one scenario once (-m 1).
type sippRun struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer // stdout and stderr
	dir  string       // logs
	done chan struct{}
	err  error
	// reported: its logs are in the test output already.
	reported bool
}

// sippOpts says how to run a scenario.
type sippOpts struct {
	// Remote is the host:port to send to (callpark). Empty for a UAS
	// scenario, which answers whoever calls it.
	Remote string
	// Port is the local SIP port (-p); 0 picks a free one.
	Port int
	// Echo runs an RTP echo on a free media port (-rtp_echo -mp).
	Echo bool
}

// startSipp starts sipp on scenario (a file in testdata/sipp) and returns
// at once; wait collects the outcome. args are extra sipp options (-key,
// -s, -au, -ap ...). Every instance gets its own SIP port, media port and
// log directory; the SIP domain is set as [domain].
func startSipp(t *testing.T, scenario string, o sippOpts, args ...string) *sippRun {
	t.Helper()
	bin := sippBinary(t)
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if o.Port == 0 {
		o.Port = pbxtest.FreePort(t)
	}
	base := strings.TrimSuffix(scenario, ".xml")
	argv := []string{
		"-sf", sf,
		"-m", "1",
		"-timeout", "30s", "-timeout_error",
		"-nostdin",
		"-i", "127.0.0.1", "-p", strconv.Itoa(o.Port),
		"-mi", "127.0.0.1",
		"-trace_err", "-error_file", filepath.Join(dir, base+"_errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, base+"_messages.log"),
		"-trace_logs", "-log_file", filepath.Join(dir, base+"_logs.log"),
		"-key", "domain", sippDomain,
	}
	if o.Echo {
		argv = append(argv, "-rtp_echo", "-mp", strconv.Itoa(freeMediaPort(t)))
	}
	argv = append(argv, args...)
	if o.Remote != "" {
		argv = append(argv, o.Remote)
	}
	r := &sippRun{name: scenario, dir: dir, done: make(chan struct{})}
	r.cmd = exec.Command(bin, argv...)
	r.cmd.Dir = dir // sipp drops its own files (screens, stats) in the cwd
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = &r.out
	t.Logf("sipp %s", strings.Join(argv, " "))
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start sipp %s: %v", scenario, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		// The test failed elsewhere (a phone, an event): sipp's side of
		// the story explains most failures.
		if t.Failed() && !r.reported {
			t.Logf("sipp %s (exit: %v) when the test failed:\n%s", r.name, r.err, r.report())
		}
	})
	return r
}

// wait waits for sipp to end and fails the test, with the message log, if
// the scenario failed.
func (r *sippRun) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(40 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		r.reported = true
		t.Fatalf("sipp %s did not finish\n%s", r.name, r.report())
	}
	if r.err != nil {
		r.reported = true
		t.Fatalf("sipp %s failed: %v\n%s", r.name, r.err, r.report())
	}
	if os.Getenv("CALLPARK_SIPP_LOG") != "" {
		t.Logf("sipp %s passed\n%s", r.name, r.report())
	}
}

// report gathers what explains a failure: the errors and the scenario's
// own log (ereg failures, <log>), then every SIP message sent and
// received.
func (r *sippRun) report() string {
	var b strings.Builder
	for _, suffix := range []string{"_errors.log", "_logs.log", "_messages.log"} {
		path := filepath.Join(r.dir, strings.TrimSuffix(r.name, ".xml")+suffix)
		data, err := os.ReadFile(path)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		fmt.Fprintf(&b, "----- %s -----\n%s\n", filepath.Base(path), data)
	}
	out := r.out.String()
	if i := strings.LastIndex(out, "------------------------------ Scenario Screen"); i >= 0 {
		out = out[i:]
	}
	if len(out) > 6000 {
		out = out[len(out)-6000:]
	}
	fmt.Fprintf(&b, "----- sipp output (tail) -----\n%s", out)
	return b.String()
}

// runSipp runs scenario to the end (see startSipp).
func runSipp(t *testing.T, scenario string, o sippOpts, args ...string) {
	t.Helper()
	startSipp(t, scenario, o, args...).wait(t)
}

// account returns the sipp options that make sipp act as ext: [ext] and
// the digest credentials.
func account(t *testing.T, p *pbxtest.PBX, ext string) []string {
	t.Helper()
	a := p.Store().Current().Customer("demo").Account(ext)
	if a == nil {
		t.Fatalf("no account %s in demo", ext)
	}
	// sipp puts the address it talks to in the digest uri, not the
	// Request-URI; as a UAS it knows none: name callpark itself.
	return []string{"-key", "ext", ext, "-au", ext, "-ap", a.Password, "-auth_uri", p.Addr}
}

// freeMediaPort returns an even UDP port P on 127.0.0.1 with P+2 free too
// (sipp's RTP echo binds both).
func freeMediaPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if port%2 != 0 || port+2 > 65535 {
			continue
		}
		ok := true
		for _, q := range []int{port, port + 2} {
			c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q)))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free media port pair")
	return 0
}

// registerSipp registers ext with sipp from local port port, so that a UAS
// scenario started later on the same port receives ext's calls.
func registerSipp(t *testing.T, p *pbxtest.PBX, ext string, port int) {
	t.Helper()
	runSipp(t, "register.xml", sippOpts{Remote: p.Addr, Port: port}, account(t, p, ext)...)
	if n := len(p.Core().Registrar().Contacts("demo", ext)); n != 1 {
		t.Fatalf("%s has %d bindings after sipp registered, want 1", ext, n)
	}
}

// callSippParker registers 333 as a sipp UAS running scenario (which
// parks the call it answers at *70333) and has 200 call it: the returned
// call is answered and 200's tone comes back through sipp's echo.
func callSippParker(t *testing.T, p *pbxtest.PBX, scenario string) (*sippRun, *pbxtest.Call) {
	t.Helper()
	port := pbxtest.FreePort(t)
	registerSipp(t, p, "333", port)
	john := startSipp(t, scenario, sippOpts{Port: port, Echo: true},
		append(account(t, p, "333"), "-s", "*70333")...)
	call := p.Phone(t, "demo", "200").Dial(t, "333")
	call.SendTone(1000)
	call.ExpectTone(t, 1000, 2500*time.Millisecond) // via sipp's echo
	return john, call
}

func TestSippRegister(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)

	runSipp(t, "register_wrong_password.xml", sippOpts{Remote: p.Addr}, "-key", "ext", "201", "-au", "201", "-ap", "wrong")
	if n := len(p.Core().Registrar().Contacts("demo", "201")); n != 0 {
		t.Fatalf("201 has %d bindings after a wrong password, want 0", n)
	}

	port := pbxtest.FreePort(t)
	registerSipp(t, p, "200", port)
	c := p.Core().Registrar().Contacts("demo", "200")[0]
	if want := "127.0.0.1:" + strconv.Itoa(port); c.Source != want || c.Contact.Port != port {
		t.Fatalf("200 is bound to %s from %s, want the sipp contact %s", c.Contact.String(), c.Source, want)
	}
	p.Events.NextWithin(t, 3*time.Second, events.RegistrationUpdated, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Account == "200" })
}

func TestSippCallHoldBye(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)

	// sipp calls sipp: 202 answers with uas_answer.xml, 200 calls, holds,
	// resumes and hangs up with uac_call_hold.xml. Signalling only.
	t.Run("sipp-to-sipp", func(t *testing.T) {
		port := pbxtest.FreePort(t)
		registerSipp(t, p, "202", port)
		uas := startSipp(t, "uas_answer.xml", sippOpts{Port: port, Echo: true}, account(t, p, "202")...)
		uac := startSipp(t, "uac_call_hold.xml", sippOpts{Remote: p.Addr, Echo: true},
			append(account(t, p, "200"), "-s", "202")...)
		uac.wait(t)
		uas.wait(t)
		p.Events.NextWithin(t, 3*time.Second, events.CallHeld, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Account == "200" })
		p.Events.NextWithin(t, 3*time.Second, events.CallResumed, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Account == "200" })
	})

	// sipp calls a Go phone, which checks the audio: its tone comes back
	// through callpark and sipp's echo while the call is up, music replaces
	// it while sipp holds, and it comes back after the resume.
	t.Run("sipp-to-phone", func(t *testing.T) {
		b := p.Phone(t, "demo", "201")
		uac := startSipp(t, "uac_call_hold.xml", sippOpts{Remote: p.Addr, Echo: true},
			append(account(t, p, "200"), "-s", "201")...)
		cb := b.Answer(t, 10*time.Second)
		cb.SendTone(1000)
		cb.ExpectTone(t, 1000, 2500*time.Millisecond)

		held := p.Events.NextWithin(t, 6*time.Second, events.CallHeld, pbxtest.Customer("demo"), func(e *events.Event) bool {
			return e.Account == "200" && e.Dialed == "201"
		})
		cb.ExpectMusic(t, 3*time.Second) // music on hold, not silence nor its own tone
		if err := cb.WaitTone(1000, 300*time.Millisecond); err == nil {
			t.Fatal("201 still hears its own tone through sipp while sipp holds")
		}

		p.Events.NextWithin(t, 6*time.Second, events.CallResumed, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Call == held.Call })
		cb.ExpectTone(t, 1000, 2500*time.Millisecond)

		uac.wait(t)
		cb.ExpectEnded(t, 5*time.Second)
		p.Events.NextWithin(t, 5*time.Second, events.CallEnded, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Call == held.Call })
	})
}

// TestSippParkHoldAndDial: a Go phone (200) calls 333, a sipp UAS, which
// holds and dials *70333 (uas_park_hold_dial.xml). 200 must keep hearing
// music, parked under 333. Then 201, a sipp UAC (uac_retrieve.xml), dials
// *71333 and gets 200 back: 200's tone returns through sipp's echo.
func TestSippParkHoldAndDial(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)

	john, ca := callSippParker(t, p, "uas_park_hold_dial.xml")

	// John holds: 200 hears music.
	p.Events.NextWithin(t, 5*time.Second, events.CallHeld, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Account == "333" })
	ca.ExpectMusic(t, 3*time.Second)

	// John dials *70333: parked under 333, confirmation spoken to John.
	parked := p.Events.NextWithin(t, 8*time.Second, events.CallParked, pbxtest.Customer("demo"))
	checkPark(t, parked, "333", "extension", "*71333", "333")
	parkLeg := p.Events.NextWithin(t, 3*time.Second, events.CallStarted, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Dialed == "*70333" })
	john.wait(t) // both of John's legs got a BYE
	expectPrompt(t, p, parkLeg.Call)

	// 200 is still there, hearing music, not its own tone.
	stillParked(t, ca)

	// 201 retrieves with *71333 from sipp.
	retr := retrieveWithSipp(t, p, "201", "*71333", ca)
	retr.wait(t) // 201 hangs up
	ca.ExpectEnded(t, 5*time.Second)
}

// stillParked checks that ca, parked, is still up and hears the hold
// stream, no longer its own tone (1000 Hz) echoed by the parker.
func stillParked(t *testing.T, ca *pbxtest.Call) {
	t.Helper()
	select {
	case <-ca.Ended():
		t.Fatal("the parked caller was hung up")
	default:
	}
	ca.ExpectAudio(t, time.Second)
	if err := ca.WaitTone(1000, 300*time.Millisecond); err == nil {
		t.Fatal("the parked caller still hears its own tone through 333")
	}
}

// retrieveWithSipp has ext, a sipp UAC with echo (uac_retrieve.xml), dial
// code to retrieve the call parked under 333: ext is named the retriever
// and ca's tone comes back through sipp's echo.
func retrieveWithSipp(t *testing.T, p *pbxtest.PBX, ext, code string, ca *pbxtest.Call) *sippRun {
	t.Helper()
	retr := startSipp(t, "uac_retrieve.xml", sippOpts{Remote: p.Addr, Echo: true},
		append(account(t, p, ext), "-s", code)...)
	got := p.Events.NextWithin(t, 8*time.Second, events.CallRetrieved, pbxtest.Customer("demo"))
	if got.Park == nil || got.Park.By != ext || got.Park.Number != "333" {
		t.Fatalf("call.retrieved: %+v, want 333 retrieved by %s", got.Park, ext)
	}
	ca.ExpectTone(t, 1000, 3*time.Second)
	return retr
}

// checkPark checks a call.parked event.
func checkPark(t *testing.T, e *events.Event, number, kind, code, parker string) {
	t.Helper()
	if e.Park == nil {
		t.Fatalf("call.parked without park data: %+v", e)
	}
	pk := e.Park
	if pk.Number != number || pk.Kind != kind || pk.Code != code || pk.Parker != parker {
		t.Fatalf("call.parked: number %q kind %q code %q parker %q, want %q %q %q %q",
			pk.Number, pk.Kind, pk.Code, pk.Parker, number, kind, code, parker)
	}
}

// expectPrompt checks that leg call was answered, heard a prompt to its
// end and was then hung up by callpark, and returns how long it was up.
func expectPrompt(t *testing.T, p *pbxtest.PBX, call string) time.Duration {
	t.Helper()
	on := func(e *events.Event) bool { return e.Call == call }
	ans := p.Events.NextWithin(t, 5*time.Second, events.CallAnswered, pbxtest.Customer("demo"), on)
	done := p.Events.NextWithin(t, 10*time.Second, events.CallPlaybackDone, pbxtest.Customer("demo"), on)
	if done.Reason == "stopped" {
		t.Fatalf("the prompt on %s was cut short", call)
	}
	end := p.Events.NextWithin(t, 5*time.Second, events.CallEnded, pbxtest.Customer("demo"), on)
	up := end.Time.Sub(ans.Time)
	if up < time.Second {
		t.Fatalf("leg %s was up only %s: no prompt was played", call, up)
	}
	t.Logf("prompt leg %s up for %s", call, up.Round(10*time.Millisecond))
	return up
}

// TestSippParkRefer: a Go phone (200) calls 333, a sipp UAS, which parks
// the call with its Park key: REFER to *70333 (uas_park_refer.xml): 202,
// NOTIFY 100, NOTIFY 200 (terminated), BYE. 200 keeps hearing music. Then
// 333, now a sipp UAC (uac_retrieve.xml), dials *71 alone and gets its own
// parked call back.
func TestSippParkRefer(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)

	john, ca := callSippParker(t, p, "uas_park_refer.xml")

	tr := p.Events.NextWithin(t, 6*time.Second, events.CallTransfer, pbxtest.Customer("demo"))
	if tr.Target != "*70333" || tr.Account != "333" {
		t.Fatalf("call.transfer: target %q account %q, want *70333 from 333", tr.Target, tr.Account)
	}
	parked := p.Events.NextWithin(t, 5*time.Second, events.CallParked, pbxtest.Customer("demo"))
	checkPark(t, parked, "333", "extension", "*71333", "333")
	john.wait(t) // 202, both NOTIFYs, BYE
	p.Events.NextWithin(t, 3*time.Second, events.CallEnded, pbxtest.Customer("demo"), func(e *events.Event) bool { return e.Call == tr.Call })

	time.Sleep(100 * time.Millisecond)
	stillParked(t, ca)

	// *71 alone: 333 retrieves the call parked under its own extension.
	retr := retrieveWithSipp(t, p, "333", "*71", ca)
	retr.wait(t) // 333 hangs up
	ca.ExpectEnded(t, 5*time.Second)
}

// TestSippRetrieve: retrieval driven by sipp. Nothing parked: *71333 is
// answered, a prompt plays and callpark hangs up (uac_retrieve_nothing.xml).
// Then Go phones park 200's call under 333 and sipp, as 201, dials *71333
// (uac_retrieve.xml): bridged, audio both ways, then 201 hangs up. The
// number is free again afterwards.
func TestSippRetrieve(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)
	nothing := func() {
		t.Helper()
		before := map[string]bool{}
		for _, e := range p.Events.All() {
			before[e.Call] = true
		}
		runSipp(t, "uac_retrieve_nothing.xml", sippOpts{Remote: p.Addr},
			append(account(t, p, "201"), "-s", "*71333")...)
		leg := p.Events.NextWithin(t, 3*time.Second, events.CallStarted, pbxtest.Customer("demo"), func(e *events.Event) bool {
			return e.Dialed == "*71333" && !before[e.Call]
		})
		expectPrompt(t, p, leg.Call)
		for _, e := range p.Events.All() {
			if e.Type == events.CallRetrieved && !before[e.Call] {
				t.Fatalf("call.retrieved with nothing parked: %+v", e.Park)
			}
		}
	}

	nothing()

	a := p.Phone(t, "demo", "200")
	john := p.Phone(t, "demo", "333")
	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- john.Answer(t, 5*time.Second) }()
	ca := a.Dial(t, "333")
	cj := <-answered
	cj.Park(t, "*70333")
	parked := p.Events.NextWithin(t, 5*time.Second, events.CallParked, pbxtest.Customer("demo"))
	checkPark(t, parked, "333", "extension", "*71333", "333")
	ca.SendTone(1000)
	ca.ExpectAudio(t, 800*time.Millisecond)
	if err := ca.WaitTone(1000, 300*time.Millisecond); err == nil {
		t.Fatal("the parked caller hears its own tone")
	}

	retr := retrieveWithSipp(t, p, "201", "*71333", ca)
	retr.wait(t)
	ca.ExpectEnded(t, 5*time.Second)

	nothing()
}

// TestSippRegisterTCP: the same digest registration over SIP/TCP.
func TestSippRegisterTCP(t *testing.T) {
	sippBinary(t)
	t.Parallel()
	p := pbxtest.Start(t)
	runSipp(t, "register.xml", sippOpts{Remote: p.Addr}, append(account(t, p, "200"), "-t", "t1")...)
	bs := p.Core().Registrar().Contacts("demo", "200")
	if len(bs) != 1 || bs[0].Transport != "tcp" {
		t.Fatalf("bindings after REGISTER over TCP: %+v", bs)
	}
}
