package core

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/internal/tick"
)

// Answered legs are kept honest too. A phone that vanishes mid-call
// (crashed, unplugged, a peer that gave up on a transaction and forgot the
// dialog) sends no BYE, and its leg, or the parked call it left behind,
// would otherwise live forever. Every DialogKeepAlive each answered leg
// whose far end has not proved alive for that long gets an in-dialog
// OPTIONS (the practice of Kamailio's dialog keep-alives; RFC 4028 session
// timers would need every phone's support). Any response but 481 proves it
// alive (405 or 501 from a phone that does not do OPTIONS in a dialog is
// fine); 481, 408 or nothing within dialogProbeTimeout (UDP retransmits
// the request meanwhile) ends the leg with call.ended reason "unreachable",
// so the control plane learns of it like of a hang-up.

const (
	// dialogProbeTimeout bounds one probe: over UDP the OPTIONS is sent
	// about five times in that span, so one lost packet is not a death.
	dialogProbeTimeout = 8 * time.Second
	// maxDialogProbes bounds the probes in flight.
	maxDialogProbes = 64
)

// dialogKeepAlive probes answered legs until ctx ends. It wakes ten times
// per interval and probes the legs due, which spreads the probes of many
// legs answered together.
func (c *Core) dialogKeepAlive(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		<-ctx.Done()
		return nil
	}
	sem := make(chan struct{}, maxDialogProbes)
	tick.Every(ctx, max(every/10, 10*time.Millisecond), func() {
		for _, ch := range c.dueForProbe(time.Now().Add(-every)) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				defer c.recoverGoroutine("dialog probe")
				ch.probe(ctx)
			}()
		}
	})
	return nil
}

// dueForProbe returns the answered legs not proved alive since before, and
// marks them as checked now so that the next tick does not pick them again.
func (c *Core) dueForProbe(before time.Time) []*channel {
	c.mu.Lock()
	all := make([]*channel, 0, len(c.channels))
	for _, ch := range c.channels {
		all = append(all, ch)
	}
	c.mu.Unlock()
	var due []*channel
	now := time.Now()
	for _, ch := range all {
		ch.mu.Lock()
		if ch.answered && !ch.ended && ch.checkedAt.Before(before) {
			ch.checkedAt = now
			due = append(due, ch)
		}
		ch.mu.Unlock()
	}
	return due
}

// probe sends one in-dialog OPTIONS and ends the leg if the far end is gone.
func (ch *channel) probe(ctx context.Context) {
	d := ch.dialogOf()
	if d == nil {
		return
	}
	req := d.request(sip.OPTIONS)
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	pctx, cancel := context.WithTimeout(ctx, dialogProbeTimeout)
	defer cancel()
	res, err := ch.core.do(pctx, d, req)
	if ctx.Err() != nil || ch.ctx.Err() != nil {
		return // shutting down, or the leg ended meanwhile
	}
	if err == nil && res != nil && res.StatusCode != sip.StatusCallTransactionDoesNotExists &&
		res.StatusCode != sip.StatusRequestTimeout {
		ch.mu.Lock()
		ch.checkedAt = time.Now()
		ch.mu.Unlock()
		return
	}
	status := "no answer"
	if res != nil {
		status = res.StartLine()
	}
	ch.core.noisy.Info("far end gone: leg hung up", "call", ch.id, "probe", status)
	ch.core.metrics.lostLegs.Inc()
	ch.lost()
}

// lost ends a leg whose far end is gone: call.ended first (the control plane
// must not wait on a BYE nobody answers), then one BYE in case it was only
// the probe that got lost.
func (ch *channel) lost() {
	d := ch.dialogOf()
	ch.finish(sip.StatusRequestTimeout, "unreachable")
	if err := ch.core.byeDialog(d); err != nil {
		ch.core.log.Debug("bye to a lost leg failed", "call", ch.id, "err", err)
	}
}
