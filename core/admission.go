package core

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callpark/callpark/core/stateless"
	"github.com/emiago/sipgo/sip"
)

// Admission decides, before anything is allocated for it, whether a new
// INVITE can be taken: past the machine's limits the right answer is an
// immediate 503 with Retry-After, not a half-set-up call that leaks its
// sockets. Zero values take the defaults noted.
type Admission struct {
	// MaxLegs bounds live legs; default: what the file-descriptor limit
	// allows (each leg holds two RTP/RTCP sockets), see DefaultMaxLegs.
	MaxLegs int
	// MaxActiveLegs: while this many legs are up and not listening to
	// music on hold, new conversations get 503 (default
	// DefaultMaxActiveLegs; negative: never). A leg on music costs a
	// socket pair and 20 KiB; any other is signalling in progress or media
	// relayed, and past the machine's capacity their number only grows:
	// each waits longer for its peer and its next step, holding its
	// goroutines, their stacks and its transactions (offered 2,000
	// park+retrieve cycles/s, more than 2 cores complete: 6,500 legs and
	// 8,000 goroutines, whose structures Go keeps for good, and fewer
	// cycles completed than at 1,500/s). Soft, like the SIP queue's
	// limit: parks and retrievals still pass, up to MaxLegs.
	MaxActiveLegs int
	// MaxUndecided bounds new calls still waiting for the control plane's
	// first command (default 1000).
	MaxUndecided int
	// MaxDecisionDelay: while most calls still waiting for the control
	// plane's first command have waited longer than this (default 5s), new
	// INVITEs get 503: a last resort behind the control plane's own load
	// shedding (control/shed.go), which knows a retrieval from a new call.
	MaxDecisionDelay time.Duration
	// MaxQueueDelay: while the SIP UDP socket's receive queue stands
	// longer than this — every datagram read in the last 100 ms waited
	// longer in it (default 50ms; negative: never) — new INVITEs get 503
	// (sipqueue.go).
	MaxQueueDelay time.Duration
	// DecisionTimeout is how long a new call waits for the control plane's
	// first command before it is answered 503 (default 5s): the last resort
	// when the control plane is gone but NATS is up.
	DecisionTimeout time.Duration
	// Connected reports whether the control plane can be reached (the NATS
	// connection is up); nil means always.
	Connected func() bool
}

func (a *Admission) defaults(log *slog.Logger) {
	if a.MaxLegs <= 0 {
		a.MaxLegs = DefaultMaxLegs()
		log.Info("admission control", "max_legs", a.MaxLegs)
	}
	if a.MaxActiveLegs == 0 {
		a.MaxActiveLegs = DefaultMaxActiveLegs()
		log.Info("admission control", "max_active_legs", a.MaxActiveLegs)
	}
	if a.MaxUndecided <= 0 {
		a.MaxUndecided = 1000
	}
	if a.MaxDecisionDelay <= 0 {
		a.MaxDecisionDelay = 5 * time.Second
	}
	if a.MaxQueueDelay == 0 {
		a.MaxQueueDelay = 50 * time.Millisecond
	}
	if a.DecisionTimeout <= 0 {
		a.DecisionTimeout = 5 * time.Second
	}
}

// DefaultMaxLegs is the number of legs the open-file limit leaves room
// for: three descriptors a leg (RTP, RTCP and a share of SIP connections),
// keeping 512 for everything else (the RTP engine's spare socket pairs
// give way to legs: core/rtp/spares.go).
func DefaultMaxLegs() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1000
	}
	n := (int(min(rl.Cur, 1<<22)) - 512) / 3
	return max(n, 50)
}

// ActiveLegsPerCore is DefaultMaxActiveLegs' share of one core.
const ActiveLegsPerCore = 1500

// DefaultMaxActiveLegs is ActiveLegsPerCore for each core the process
// may run on (GOMAXPROCS). Measured on 2 cores with sipp beside callparkd
// (scripts/bench-park.sh): at most 1,484 legs busy at 1,000 park+retrieve
// cycles/s and 2,666 at 1,500/s, all completed; offered 2,000/s, more
// than the machine completes, they grew to the legs' limit (6,495).
func DefaultMaxActiveLegs() int {
	return ActiveLegsPerCore * runtime.GOMAXPROCS(0)
}

// RaiseFileLimit lifts the soft open-file limit to the hard one (a
// process-wide setting: call it from main) and returns the new limit.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// overloaded says why the new INVITE req cannot be taken now ("" if it
// can). The limits on the legs busy, the SIP queue and the control
// plane's lag are soft: they refuse new conversations, not a call that takes one off the
// books (a retrieval or a park, Directory.Finishing), which would
// otherwise fail a caller after the work spent on them had been done: at
// twice the machine's park+retrieve capacity, a third of the retrievals
// were refused and most of the cycles admitted failed at their end.
// Nor the second INVITE of a call whose first one passed them a moment
// ago (admitted.go). All legs, waiting calls and the control plane's
// reachability are hard limits.
func (c *Core) overloaded(req *sip.Request) string {
	a := &c.cfg.Admission
	if a.Connected != nil && !a.Connected() {
		return "control_unreachable"
	}
	now := time.Now()
	c.mu.Lock()
	legs, undecided := len(c.channels), c.undecided
	c.trimUndecidedLocked()
	lag := c.decisionLagLocked(now)
	c.mu.Unlock()
	if legs >= a.MaxLegs {
		return "max_legs"
	}
	if undecided >= a.MaxUndecided {
		return "control_backlog"
	}
	soft := ""
	if a.MaxActiveLegs > 0 && legs >= a.MaxActiveLegs && legs-c.onMusic() >= a.MaxActiveLegs {
		soft = "active_legs"
	} else if q := c.sipUDP.Load(); q != nil && a.MaxQueueDelay > 0 && q.queueWait() > a.MaxQueueDelay {
		soft = "sip_queue"
	} else if lag > a.MaxDecisionDelay {
		soft = "control_backlog"
	}
	var callID string
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	if soft != "" && (c.finishing(req) || c.admitted.has(callID, now)) {
		return ""
	}
	if soft == "" && callID != "" {
		c.admitted.add(callID, now)
	}
	return soft
}

// onMusic is the number of legs listening to music on hold.
func (c *Core) onMusic() int {
	if c.hubs == nil {
		return 0
	}
	return c.hubs.Stats().Listeners
}

// finishing reports whether the new INVITE req takes a call off the
// PBX's books rather than starts one (Directory.Finishing): the dialed
// user of a phone of the From domain.
func (c *Core) finishing(req *sip.Request) bool {
	from := req.From()
	if c.cfg.Directory == nil || from == nil || req.Recipient.User == "" {
		return false
	}
	return c.cfg.Directory.Finishing(from.Address.Host, req.Recipient.User)
}

// decisionLagLocked is how long new calls typically wait for the control
// plane: the age of the leg in the middle of those waiting (more than half
// have waited at least that long), with c.mu held. Not the oldest's: the
// control plane decides each call on its own, and one call held up there
// (behind a phone slow to answer, say) must not get every new call
// refused while the rest are decided in milliseconds; each late call is
// refused on its own (Admission.DecisionTimeout).
func (c *Core) decisionLagLocked(now time.Time) time.Duration {
	want := c.undecided/2 + 1 // the middle one, counting from the oldest
	seen := 0
	for _, ch := range c.undecidedQ {
		if ch.decision.done.Load() {
			continue
		}
		if seen++; seen == want {
			return now.Sub(ch.created)
		}
	}
	return 0
}

// trimUndecidedLocked drops the decided legs at the head of undecidedQ,
// and all of them when they are most of it, with c.mu held. Run at every
// decision too, not only at the next INVITE: after a load the queue would
// otherwise keep the last legs (their dialogs, media and buffers) reachable
// until the next call.
func (c *Core) trimUndecidedLocked() {
	q := c.undecidedQ
	for len(q) > 0 && q[0].decision.done.Load() {
		q[0] = nil
		q = q[1:]
	}
	if len(q) > 64 && c.undecided < len(q)/2 {
		kept := make([]*channel, 0, 2*c.undecided)
		for _, ch := range q {
			if !ch.decision.done.Load() {
				kept = append(kept, ch)
			}
		}
		q = kept
	}
	if len(q) == 0 {
		q = nil // let the backing array go too
	}
	c.undecidedQ = q
}

func (c *Core) refuseOverload(req *sip.Request, tx sip.ServerTransaction, why string) {
	c.metrics.overload.WithLabelValues(why).Inc()
	c.noisy.Warn("new call refused: overload", "reason", why)
	refuseStateless(req, tx, "5")
}

// refuseStateless answers a new INVITE 503 with Retry-After, statelessly
// (package stateless): a refusal for overload must not keep what the load
// was refused to save.
func refuseStateless(req *sip.Request, tx sip.ServerTransaction, retryAfter string) {
	res := sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Service Unavailable", nil)
	res.AppendHeader(sip.NewHeader("Retry-After", retryAfter))
	_ = stateless.Respond(req, tx, res)
}

// decision tracks whether the control plane has acted on a new inbound
// leg yet.
type decision struct {
	once sync.Once
	ch   chan struct{}
	done atomic.Bool
}

// decided records the control plane's first command for the leg.
func (ch *channel) decided() {
	ch.decision.once.Do(func() {
		ch.decision.done.Store(true)
		close(ch.decision.ch)
		if ch.inbound {
			ch.core.decisions.Cancel(ch.id)
			ch.core.metrics.decisionDelay.Observe(time.Since(ch.created).Seconds())
			ch.core.mu.Lock()
			ch.core.undecided--
			ch.core.trimUndecidedLocked()
			ch.core.mu.Unlock()
		}
	})
}
