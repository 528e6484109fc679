// Package stateless answers SIP requests the way a stateless UAS does
// (RFC 3261 8.2.7): once, keeping no transaction.
//
// callpark turns down that way every request it refuses before the request
// has a dialog: a challenge, a malformed or unacceptable request, a call
// refused for overload. Kept in a transaction for its timers, a refused
// INVITE over UDP would have its answer resent ten times over 32 s to
// whatever source address it claimed (one forged packet, eleven answers,
// each larger than it: a reflector for anyone's flood), and hold its
// parsed messages and a goroutine waiting for the ACK meanwhile (under
// overload, thousands at once: the memory and the CPU the refusal was
// meant to save). A caller whose answer was lost retransmits and gets a
// fresh one. The ACK of such an answer meets no transaction; the To tag
// the answer carries marks it (IsACK), so that it is dropped quietly.
package stateless

import (
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// tagPrefix begins the To tag of every stateless answer that sets one.
const tagPrefix = "sl-"

// Respond sends res, an answer to req, on tx and ends tx at once. When req
// had no To tag, res gets one that IsACK recognises (a request inside a
// dialog keeps its own).
func Respond(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) error {
	if to, rto := req.To(), res.To(); to != nil && rto != nil && !to.Params.Has("tag") {
		rto.Params.Add("tag", tagPrefix+uuid.NewString())
	}
	err := tx.Respond(res)
	tx.Terminate()
	return err
}

// IsACK reports whether req is the ACK of a stateless answer: nothing
// waits for it, and it can change nothing.
func IsACK(req *sip.Request) bool {
	if req.Method != sip.ACK {
		return false
	}
	to := req.To()
	if to == nil {
		return false
	}
	tag, _ := to.Params.Get("tag")
	return strings.HasPrefix(tag, tagPrefix)
}
