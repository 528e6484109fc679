package presence

// The NOTIFY sender: one NOTIFY in flight per subscription, changes that
// come meanwhile folded into the next one.

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// queueLocked asks for a NOTIFY of st to sb; final names the reason of a
// terminating one. Changes queued while a NOTIFY is in flight fold into
// the next.
func (s *Server) queueLocked(sb *sub, st State, known bool, final string) {
	sb.mu.Lock()
	if sb.ended {
		sb.mu.Unlock()
		return
	}
	sb.pending, sb.known = st, known
	if final != "" {
		sb.final, sb.ended = final, true
	}
	sb.dirty = true
	start := !sb.sending
	sb.sending = true
	sb.mu.Unlock()
	if start {
		go s.sendLoop(sb)
	}
}

// sendLoop sends sb's NOTIFYs one at a time until nothing is pending.
func (s *Server) sendLoop(sb *sub) {
	for {
		sb.mu.Lock()
		if !sb.dirty {
			sb.sending = false
			sb.mu.Unlock()
			return
		}
		sb.dirty = false
		final := sb.final != ""
		req := s.notify(sb)
		sb.mu.Unlock()

		reason := s.send(req)
		if final {
			return // sending stays true: nothing follows the last NOTIFY
		}
		if reason != "" {
			s.drop(sb, reason)
			return
		}
	}
}

// notify builds sb's next NOTIFY; sb.mu is held.
func (s *Server) notify(sb *sub) *sip.Request {
	req := sip.NewRequest(sip.NOTIFY, *sb.remote.Clone())
	for _, r := range sb.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: sb.ent.user, Host: sb.domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sb.toTag)
	to := sb.to
	to.Address = *sb.to.Address.Clone()
	to.Params = sb.to.Params.Clone()
	cid := sip.CallIDHeader(sb.key.callID)
	req.AppendHeader(from)
	req.AppendHeader(&to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: sb.cseq, MethodName: sip.NOTIFY})
	sb.cseq++
	req.AppendHeader(&sip.ContactHeader{Address: s.cfg.Contact})
	ev := Package
	if sb.eventID != "" {
		ev += ";id=" + sb.eventID
	}
	req.AppendHeader(sip.NewHeader("Event", ev))
	if sb.final != "" {
		req.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason="+sb.final))
	} else {
		left := time.Until(time.Unix(0, sb.expiresAt.Load())) / time.Second
		req.AppendHeader(sip.NewHeader("Subscription-State", "active;expires="+strconv.Itoa(int(max(left, 0)))))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", ContentType))
	req.SetBody(Body(sb.ent.user, sb.domain, sb.version, sb.pending, sb.known))
	sb.version++
	req.SetDestination(sb.dest)
	if sb.transport != "" {
		req.SetTransport(sb.transport)
	}
	return req
}

// send sends one NOTIFY; it returns "" when it was accepted (2xx) and the
// failure reason otherwise.
func (s *Server) send(req *sip.Request) string {
	select {
	case s.flight <- struct{}{}:
	case <-s.ctx.Done():
		return "error"
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.NotifyTimeout)
	res, err := s.cfg.Send(ctx, req)
	cancel()
	<-s.flight
	reason := ""
	switch {
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sip.ErrTransactionTimeout)):
		reason = "timeout"
	case err != nil:
		reason = "error"
	case res.StatusCode == sip.StatusCallTransactionDoesNotExists:
		reason = "481"
	case !res.IsSuccess():
		reason = "rejected"
	}
	if reason == "" {
		s.metrics.notifies.Inc()
	} else {
		s.metrics.failures.WithLabelValues(reason).Inc()
		s.log.Debug("notify failed", "to", req.Recipient.String(), "dest", req.Destination(), "reason", reason, "err", err)
	}
	return reason
}

// drop removes a subscription whose subscriber is gone.
func (s *Server) drop(sb *sub, reason string) {
	s.mu.Lock()
	s.removeLocked(sb)
	s.mu.Unlock()
	sb.mu.Lock()
	sb.ended = true
	sb.mu.Unlock()
	s.log.Info("subscription dropped", "customer", sb.ent.customer, "entity", sb.ent.user, "dest", sb.dest, "reason", reason)
}
