package main

import (
	"bytes"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx"
)

func TestCheckSample(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "../../dialplans/sample"}, &out, &errb); code != 0 {
		t.Fatalf("check sample: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

func TestCheckReportsFileLine(t *testing.T) {
	dir := t.TempDir()
	bad := "kind: rule\nname: r\ntype: PBX\ncodes:\n  park: \"*70\"\n  relase: \"*71\"\n"
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"check", dir}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := filepath.Join(dir, "r.yaml") + ":6: "
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "relase") {
		t.Fatalf("output %q lacks %q naming the key", out.String(), want)
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := run([]string{"--sip", "nonsense"}, &out, &errb); code != 2 {
		t.Fatalf("bad --sip: exit %d", code)
	}
	if code := run([]string{"--media-priority", "100"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--media-priority 100") {
		t.Fatalf("--media-priority 100: exit %d, %q", code, errb.String())
	}
}

// Real-time music shards, where the process may have them, come with one
// P each on top of the cores' (each waits for its tick in a system call,
// holding a P); the RTP pollers stay one per core. A control plane alone
// paces no music.
func TestMediaThreads(t *testing.T) {
	cores := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(cores)
	log := slog.New(slog.DiscardHandler)
	shards, prio, pollers := mediaThreads(pbx.RoleControl, 0, 10, log)
	if shards != cores || prio != 0 || pollers != cores || runtime.GOMAXPROCS(0) != cores {
		t.Fatalf("control role: %d shards, priority %d, %d pollers, GOMAXPROCS %d", shards, prio, pollers, runtime.GOMAXPROCS(0))
	}
	shards, prio, pollers = mediaThreads(pbx.RoleAll, 3, 10, log)
	switch {
	case shards != 3 || pollers != cores:
		t.Fatalf("%d shards, %d pollers; want 3 and %d", shards, pollers, cores)
	case prio == 10 && runtime.GOMAXPROCS(0) != cores+3:
		t.Fatalf("real-time shards: GOMAXPROCS %d, want %d", runtime.GOMAXPROCS(0), cores+3)
	case prio == 0 && runtime.GOMAXPROCS(0) != cores:
		t.Fatalf("no real-time priority here, yet GOMAXPROCS %d (was %d)", runtime.GOMAXPROCS(0), cores)
	}
}

// TestEnvValuesAreChecked: a CALLPARK_* variable the flag refuses stops
// callparkd with the variable's name, instead of falling back to the
// default; a flag on the command line beats its variable.
func TestEnvValuesAreChecked(t *testing.T) {
	t.Setenv("CALLPARK_BAN_FAILURES", "ten")
	var out, errs strings.Builder
	if code := run([]string{"--sip", "127.0.0.1:notaport"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "CALLPARK_BAN_FAILURES") {
		t.Fatalf("bad env: exit %d, %q", code, errs.String())
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	n := fs.Int("ban-failures", 10, "")
	d := fs.Duration("dialog-keepalive", time.Minute, "")
	if err := fs.Parse([]string{"--ban-failures", "3"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CALLPARK_BAN_FAILURES": "7", "CALLPARK_DIALOG_KEEPALIVE": "30s"}
	if err := applyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if *n != 3 || *d != 30*time.Second {
		t.Fatalf("ban-failures %d (flag given: 3), dialog-keepalive %s (env: 30s)", *n, *d)
	}
}
