package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
