package main

import (
	"flag"
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultGCPercent is callparkd's GOGC. Park+retrieve cycles allocate
// (SIP messages, transactions, events) faster than anything else the
// process does, and the collector's share of the CPU goes down as the room
// it leaves the heap goes up: at 1,000 cycles/s on two cores it was 17 %
// of callparkd's CPU at Go's default of 100, 13 % at 150 and 10 % at 200
// (pprof, scripts/bench-park.sh). The same room is memory a parked call
// costs: 20.4, 23.8 and 28.8 KiB a call at 5,000 parked (issue 10 allows
// 30). 150 keeps both well inside.
const defaultGCPercent = 150

// gcPercentFlag names the flag that sets it.
const gcPercentFlag = "gc-percent"

// setGCPercent sets the collector's GOGC to percent, unless the flag was
// left alone and the GOGC environment variable says otherwise.
func setGCPercent(fs *flag.FlagSet, percent int, log *slog.Logger) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == gcPercentFlag })
	if !given && os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(percent)
	log.Debug("garbage collector", "gc_percent", percent)
}
