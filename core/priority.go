package core

import (
	"log/slog"

	"github.com/callpark/callpark/internal/tick"
)

// mediaPriority returns prio if a thread of this process may run at that
// real-time priority (tried on a thread that ends at once), else 0; it
// says which at start, since music on a loaded machine depends on it.
func mediaPriority(prio int, log *slog.Logger) int {
	if prio <= 0 {
		return 0
	}
	tried := make(chan error)
	go func() { tried <- tick.Realtime(prio) }() // the thread ends with the goroutine
	if err := <-tried; err != nil {
		log.Info("music on hold paces at normal priority: real-time scheduling refused (give callparkd CAP_SYS_NICE, or --media-priority 0 to not ask)", "err", err)
		return 0
	}
	log.Info("music on hold paces on real-time threads", "policy", "SCHED_RR", "priority", prio)
	return prio
}
