package core

import (
	"fmt"
	"reflect"
	"testing"
)

// TestLegMapsGiveBackABurstsRoom: a Go map keeps the room of its largest
// size, so once the last leg of a burst is gone (an overload, a full car
// park emptied) the core's leg maps are made anew; a quiet PBX's legs
// coming and going keep theirs.
func TestLegMapsGiveBackABurstsRoom(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Core{metrics: m, channels: map[string]*channel{}, byCallID: map[string]*channel{}}
	var legs []*channel
	for i := range legsKeep + 1 {
		ch := c.newChannel(fmt.Sprintf("leg-%d", i), "inbound")
		ch.callID = fmt.Sprintf("call-%d", i)
		c.register(ch)
		legs = append(legs, ch)
	}
	burst := reflect.ValueOf(c.channels).UnsafePointer()
	for _, ch := range legs[1:] {
		c.forget(ch)
	}
	if reflect.ValueOf(c.channels).UnsafePointer() != burst {
		t.Fatal("the maps were made anew while a leg was still in them")
	}
	c.forget(legs[0])
	if reflect.ValueOf(c.channels).UnsafePointer() == burst || c.peakLegs != 0 || len(c.byCallID) != 0 {
		t.Fatalf("after the burst: peak %d, the same map: want new maps", c.peakLegs)
	}

	quiet := reflect.ValueOf(c.channels).UnsafePointer()
	ch := c.newChannel("leg-a", "inbound")
	c.register(ch)
	c.forget(ch)
	if reflect.ValueOf(c.channels).UnsafePointer() != quiet {
		t.Fatal("a quiet PBX's leg maps were made anew")
	}
	if c.channel("leg-a") != nil || c.Calls() != 0 {
		t.Fatal("a forgotten leg is still found")
	}
}
