package core

import (
	"log/slog"

	"github.com/callpark/callpark/internal/tick"
)

// MediaPriority returns prio if a thread of this process may run at that
// real-time priority (tried on a thread that goes back to its policy at
// once), else 0, for
// Config.MediaPriority; it says which, since music on a loaded machine
// depends on it.
//
// A real-time shard waits for each tick in a system call, and Go leaves
// the goroutine's P with it until the scheduler's monitor takes it back
// (up to 10 ms, at every tick): a process that uses real-time shards
// should run one P more per shard (runtime.GOMAXPROCS), or those waits
// take the turns of its other goroutines. At 1,000 park+retrieve cycles
// a second on 2 cores, callparkd got 1.32-1.35 cores of the machine
// without the extra Ps and refused more calls; with them 1.47-1.50, more
// than without real-time shards (1.36-1.41: the extra Ps cost scheduling
// work), still refusing some calls the default took. Hence an operator's
// choice: music on time on a full machine, or the last of the set-up
// rate.
func MediaPriority(prio int, log *slog.Logger) int {
	if prio <= 0 {
		return 0
	}
	if err := tick.RealtimePermitted(prio); err != nil {
		log.Info("music on hold paces at normal priority: real-time scheduling refused (give callparkd CAP_SYS_NICE, or --media-priority 0 to not ask)", "err", err)
		return 0
	}
	log.Info("music on hold paces on real-time threads", "policy", "SCHED_RR", "priority", prio)
	return prio
}
