package core

import "testing"

// TestALateGoodbyeLeavesTheNewBridge: the parker's leg, ending, detaches
// itself from the parked caller after the caller has been bridged with
// the one who retrieved it: the caller goes on hearing the retriever.
func TestALateGoodbyeLeavesTheNewBridge(t *testing.T) {
	leg := func(id string) *channel {
		ch := &channel{id: id}
		ch.out.ch = ch
		return ch
	}
	caller, parker, retriever := leg("caller"), leg("parker"), leg("retriever")
	c := &Core{}

	c.bridge(caller, parker)
	c.bridge(caller, retriever) // retrieved while the parker's leg ends
	detach(caller, parker)      // the parker's leg, late
	if caller.peer.Load() != retriever || caller.out.Mode() != modeBridge {
		t.Fatalf("caller's peer %v, mode %d: want the retriever's audio", caller.peer.Load(), caller.out.Mode())
	}

	detach(caller, retriever) // the retriever hangs up
	if caller.peer.Load() != nil || caller.out.Mode() != modeNone {
		t.Fatalf("caller's peer %v, mode %d after its peer left: want none", caller.peer.Load(), caller.out.Mode())
	}
}
