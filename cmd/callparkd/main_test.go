package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
