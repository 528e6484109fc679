package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/internal/syncbuf"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// parkctl runs the command with env as its environment.
func parkctl(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	t.Logf("parkctl %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	env := map[string]string{}
	if code, out, _ := parkctl(t, env, "--help"); code != exitOK || !strings.Contains(out, "parkctl [flags] retrieve") {
		t.Fatalf("--help: %d", code)
	}
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--customer", "demo", "park", "--slot", "1"},
		{"--customer", "demo", "park", "--account", "200"},
		{"--customer", "demo", "park", "--account", "200", "--slot", "1", "--extension", "333"},
		{"--customer", "demo", "retrieve", "--slot", "1"},
		{"--customer", "demo", "calls"},
		{"slots"},
		{"--customer", "demo", "slots", "extra"},
		{"--customer", "demo", "--bogus", "slots"},
	} {
		if code, _, errs := parkctl(t, env, args...); code != exitUsage || !strings.Contains(errs, "parkctl: ") {
			t.Errorf("%q: exit %d, want %d with a message", args, code, exitUsage)
		}
	}
	// No server: a clear error and exit 1.
	if code, _, errs := parkctl(t, env, "--nats", "nats://127.0.0.1:1", "--customer", "demo", "slots"); code != exitError || !strings.Contains(errs, "connect") {
		t.Errorf("no server: exit %d %q", code, errs)
	}
}

func TestParkctlAgainstRunningService(t *testing.T) {
	p := pbxtest.Start(t)
	caller := p.Phone(t, "demo", "202")
	reception := p.Phone(t, "demo", "200")
	env := map[string]string{"PARKCTL_NATS": p.NATSURL(), "PARKCTL_CUSTOMER": "demo", "PARKCTL_TOKEN": "demo-api-token-0123456789"}

	// watch prints the parking events as they happen.
	watchOut, watchErr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan int, 1)
	go func() {
		watchDone <- run(wctx, []string{"watch"}, func(k string) string { return env[k] }, watchOut, watchErr)
	}()
	defer stopWatch()

	answered := make(chan *pbxtest.Call, 1)
	go func() { answered <- reception.Answer(t, 5*time.Second) }()
	cc := caller.Dial(t, "200")
	cr := <-answered

	// The control plane learns of the answer from the core's event, a
	// moment after the phone has it: the call shows up within a second.
	var code int
	var out string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, out, _ = parkctl(t, env, "calls", "--account", "200")
		if code == exitOK && strings.Contains(out, " up ") && strings.Contains(out, "202") || time.Now().After(deadline) {
			break
		}
	}
	if code != exitOK || !strings.Contains(out, " up ") || !strings.Contains(out, "202") {
		t.Fatalf("calls: %d %q", code, out)
	}
	code, out, _ = parkctl(t, env, "park", "--account", "200", "--slot", "1")
	if code != exitOK || !strings.Contains(out, "parked 202 on slot 1: retrieve with 711") {
		t.Fatalf("park: %d %q", code, out)
	}
	cr.ExpectEnded(t, 5*time.Second)
	cc.ExpectAudio(t, 500*time.Millisecond)

	code, out, _ = parkctl(t, env, "slots")
	if code != exitOK || !strings.Contains(out, "busy") || !strings.Contains(out, "711") || !strings.Contains(out, "free") {
		t.Fatalf("slots: %d %q", code, out)
	}
	code, out, _ = parkctl(t, env, "parked")
	if code != exitOK || !strings.Contains(out, "slot") || !strings.Contains(out, "711") {
		t.Fatalf("parked: %d %q", code, out)
	}
	// API errors exit 1 with the code.
	code, _, errs := parkctl(t, env, "retrieve", "--slot", "2", "--to", "200")
	if code != exitError || !strings.Contains(errs, "(not_parked)") {
		t.Fatalf("retrieve from free slot: %d %q", code, errs)
	}
	code, _, errs = parkctl(t, env, "--token", "wrong-token-wrong-token", "slots")
	if code != exitError || !strings.Contains(errs, "(forbidden)") {
		t.Fatalf("wrong token: %d %q", code, errs)
	}

	// Retrieve to 200: its phone rings, answers, and they talk.
	go func() { answered <- reception.Answer(t, 5*time.Second) }()
	code, out, _ = parkctl(t, env, "retrieve", "--slot", "1", "--to", "200")
	if code != exitOK || !strings.HasPrefix(out, "ringing 200 with 202 from slot 1") {
		t.Fatalf("retrieve: %d %q", code, out)
	}
	cr = <-answered
	cc.SendTone(1000)
	cr.SendTone(1400)
	cr.ExpectTone(t, 1000, 3*time.Second)
	cc.ExpectTone(t, 1400, 3*time.Second)

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(watchOut.String(), "call.retrieved") {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed:\n%s%s", watchOut.String(), watchErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopWatch()
	if code := <-watchDone; code != exitOK {
		t.Fatalf("watch exit %d", code)
	}
	w := watchOut.String()
	t.Logf("watch:\n%s", w)
	if !strings.Contains(w, "call.parked") || !strings.Contains(w, "slot 1") || !strings.Contains(w, "retrieved by 200") || strings.Contains(w, "call.started") {
		t.Fatalf("watch output:\n%s", w)
	}
}
