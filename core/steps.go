package core

import (
	"cmp"
	"slices"
)

// A leg changes from outside its own dialog in steps: one control-plane
// command, or one of the core's own compound actions (a dial's answer,
// which acknowledges the callee, answers the caller and bridges the two;
// a cluster join). Each step holds the steps lock of every leg it
// touches, so a command never lands in the middle of another step.
//
// Without it a step could be overtaken by what it caused: the callee has
// the ACK and sends a park REFER at once, the control plane sends music
// for the caller, and the dial's bridge, a moment late on a busy machine,
// switched the caller back to its (departing) peer: a parked caller in
// silence. With it the music command waits for the bridge and is applied
// after it, in the order the control plane saw their causes.
//
// Steps are short and never wait for the network (sending a request, not
// awaiting its answer), so a command waits microseconds, at worst as long
// as one SIP write: over TCP or TLS that is bounded too (streamWriteTimeout
// in listen.go; a peer that stops reading is hung up on).

// lockSteps takes the steps locks of the given legs (nil ones and
// repeats skipped) in one order, the legs' ids, so that two steps over
// the same pair cannot deadlock, and returns the function that releases
// them.
func lockSteps(legs ...*channel) (unlock func()) {
	held := make([]*channel, 0, len(legs))
	for _, ch := range legs {
		if ch != nil && !slices.Contains(held, ch) {
			held = append(held, ch)
		}
	}
	slices.SortFunc(held, func(a, b *channel) int { return cmp.Compare(a.id, b.id) })
	for _, ch := range held {
		ch.steps.Lock()
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].steps.Unlock()
		}
	}
}
