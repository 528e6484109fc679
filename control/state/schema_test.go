package state

import (
	"reflect"
	"strconv"
	"testing"
)

// TestTablesGiveABurstsRoomBack: a table emptied after a burst gets new
// maps; a small one keeps its maps (no allocation per quiet call).
func TestTablesGiveABurstsRoomBack(t *testing.T) {
	tb := newTables()
	for i := range 1000 {
		id := strconv.Itoa(i)
		tb.putChannel(&Channel{ID: id, Customer: "demo", Account: "200"})
		tb.putParked(&Parked{Customer: "demo", Key: id, Channel: id})
		tb.putDial(&Dial{ID: id, For: id, Leg: "o" + id})
	}
	for i := range 1000 {
		id := strconv.Itoa(i)
		tb.delDial(tb.dials[id])
		tb.delParked(tb.parked[parkKey{"demo", id}])
		tb.delChannel(tb.channels[id])
	}
	if tb.peakChannels != 0 || tb.peakParked != 0 || tb.peakDials != 0 {
		t.Fatalf("after the burst: peaks %d, %d, %d; want new maps", tb.peakChannels, tb.peakParked, tb.peakDials)
	}
	if len(tb.byAccount) != 0 || len(tb.parkedCust) != 0 || len(tb.dialsLeg) != 0 {
		t.Fatal("an index outlived its table")
	}

	tb.putChannel(&Channel{ID: "a", Customer: "demo"})
	before := reflect.ValueOf(tb.channels).UnsafePointer()
	tb.delChannel(tb.channels["a"])
	if reflect.ValueOf(tb.channels).UnsafePointer() != before {
		t.Fatal("a small table's map was remade")
	}
}
