package main

import (
	"flag"
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

// --gc-percent sets the collector's GOGC; GOGC in the environment wins
// unless the flag is given.
func TestGCPercent(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parse := func(args ...string) (*flag.FlagSet, int) {
		fs := flag.NewFlagSet("callparkd", flag.ContinueOnError)
		p := fs.Int(gcPercentFlag, defaultGCPercent, "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs, *p
	}
	current := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }

	t.Setenv("GOGC", "")
	fs, p := parse()
	setGCPercent(fs, p, log)
	if got := current(); got != defaultGCPercent {
		t.Errorf("default: GOGC %d, want %d", got, defaultGCPercent)
	}

	debug.SetGCPercent(300)
	t.Setenv("GOGC", "300")
	fs, p = parse()
	setGCPercent(fs, p, log)
	if got := current(); got != 300 {
		t.Errorf("GOGC=300 in the environment, no flag: GOGC %d, want 300", got)
	}

	fs, p = parse("--"+gcPercentFlag, "120")
	setGCPercent(fs, p, log)
	if got := current(); got != 120 {
		t.Errorf("--gc-percent 120 with GOGC=300: GOGC %d, want 120", got)
	}
}
