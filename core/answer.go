package core

// Answering an inbound leg: the 200 OK with our SDP answer, and the
// caller's ACK that confirms it (inbound.go admits and rings the leg).

import (
	"errors"
	"time"

	"github.com/callpark/callpark/core/sdp"
	"github.com/callpark/callpark/events"
	"github.com/emiago/sipgo/sip"
)

// answer answers an inbound leg and starts its media. Safe to call twice.
// It returns once the 200 OK is out: the media flows from then on, and
// commands may act on the leg at once. call.answered is published when the
// caller's ACK comes (confirm), so that everything the phone does next is
// seen after it. (Waiting for the ACK here held the control plane's worker
// for the phone's round trip, and every call queued behind it.)
func (ch *channel) answer() error {
	if ch.isRejected() {
		// Refused already (the decision came too late).
		return errEnded
	}
	ch.answerMu.Lock()
	defer ch.answerMu.Unlock()
	if !ch.inbound {
		return errNotInbound
	}
	ch.mu.Lock()
	switch {
	case ch.answered || ch.answering:
		ch.mu.Unlock()
		return nil
	case ch.rejected || ch.invTx == nil || ch.ctx.Err() != nil:
		ch.mu.Unlock()
		return errEnded
	}
	ch.answering = true
	inv, tx, offer := ch.inv, ch.invTx, ch.invOffer
	ch.invOffer = nil
	ch.mu.Unlock()
	res, err := ch.answerResponse(offer)
	if err == nil {
		ack := ch.expectAck(inv.CSeq().SeqNo)
		if err = tx.Respond(res); err == nil {
			ch.core.goroutines.Go(func() { ch.confirm(tx, res, ack) })
			return nil
		}
	}
	ch.mu.Lock()
	ch.answering = false
	ch.mu.Unlock()
	return err
}

// answerResponse opens the leg's media, answers the INVITE's offer and
// builds the 200 OK.
func (ch *channel) answerResponse(offer *sdp.Session) (*sip.Response, error) {
	if offer == nil {
		return nil, errNoAudio
	}
	if err := ch.openMedia(); err != nil {
		return nil, err
	}
	body, err := ch.answerOffer(offer)
	if err != nil {
		return nil, err
	}
	res := ch.response(sip.StatusOK, "OK", body)
	if res == nil {
		return nil, errEnded
	}
	return res, nil
}

// confirm waits for the ACK of the leg's 200 OK (resending it meanwhile),
// then marks the leg up and publishes call.answered. No ACK within 64*T1
// confirms it all the same (RFC 3261 13.3.1.4).
func (ch *channel) confirm(tx sip.ServerTransaction, res *sip.Response, ack chan *sip.Request) {
	defer ch.core.recoverGoroutine("confirm")
	if _, ok := ch.waitAck(tx, res, ack); !ok {
		ch.core.log.Debug("no ACK for our answer", "call", ch.id)
	}
	// From answering to answered in one step: a command between the two
	// (music for a park by REFER racing the caller's ACK) found the leg
	// neither and was refused with bad_state.
	ch.mu.Lock()
	ch.answering = false
	live := ch.ctx.Err() == nil
	if live {
		ch.upLocked()
		ch.inv, ch.invTx = nil, nil // the dialog has what it needs
	}
	ch.mu.Unlock()
	if !live {
		tx.Terminate()
		return
	}
	tx.Terminate()
	ch.core.publish(ch.event(events.CallAnswered))
	ch.announced()
}

// expectAck arms the wait for the ACK of a 2xx to the INVITE with CSeq seq.
func (ch *channel) expectAck(seq uint32) chan *sip.Request {
	a := make(chan *sip.Request, 1)
	ch.mu.Lock()
	if ch.acks == nil {
		ch.acks = map[uint32]chan *sip.Request{}
	}
	ch.acks[seq] = a
	ch.mu.Unlock()
	return a
}

// waitAck resends a 2xx on its transaction until its ACK comes (RFC 3261
// 13.3.1.4: T1, doubling up to T2, for 64*T1), the leg ends or the
// transaction dies. It returns the ACK.
func (ch *channel) waitAck(tx sip.ServerTransaction, res *sip.Response, ack chan *sip.Request) (*sip.Request, bool) {
	defer func() {
		ch.mu.Lock()
		for k, a := range ch.acks {
			if a == ack {
				delete(ch.acks, k)
			}
		}
		ch.mu.Unlock()
	}()
	// One timer: resends at T1, 2*T1, ... T2 apart, the last at the give-up
	// time. A stream transport delivers the 2xx: only the give-up.
	giveUp := time.Now().Add(64 * sip.T1)
	interval := sip.T1
	reliable := sip.IsReliable(res.Transport())
	t := time.NewTimer(interval)
	if reliable {
		t.Reset(64 * sip.T1)
	}
	defer t.Stop()
	txDone := tx.Done()
	for {
		select {
		case a, ok := <-ack:
			return a, ok && a != nil
		case <-t.C:
			left := time.Until(giveUp)
			if reliable || left <= 0 {
				return nil, false
			}
			_ = tx.Respond(res)
			interval = min(2*interval, sip.T2)
			t.Reset(min(interval, left))
		case <-ch.ctx.Done():
			return nil, false
		case <-txDone:
			// Its timer (64*T1) is ours too; a transport error ends it.
			if !errors.Is(tx.Err(), sip.ErrTransactionTerminated) && tx.Err() != nil {
				return nil, false
			}
			txDone = nil
		}
	}
}

// acked hands an ACK to the answer waiting for it.
func (ch *channel) acked(req *sip.Request) {
	seq := req.CSeq().SeqNo
	ch.mu.Lock()
	a := ch.acks[seq]
	delete(ch.acks, seq)
	ch.mu.Unlock()
	if a != nil {
		a <- req
	}
}
