package events

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzEventJSON checks AppendJSON against encoding/json, which it
// replaces on the way out: the same bytes for every event, or an error
// from both.
func FuzzEventJSON(f *testing.F) {
	f.Add("call.started", "demo", `"Ann" <b>&`, 0, int64(1_800_000_000), int64(123_456_789), 0, uint16(0xffff))
	f.Add("call.parked", "\u2028\x00\x1f\xff", "\t\n\r\b\f\\", 486, int64(-62_135_596_900), int64(0), 3600, uint16(0x5555))
	f.Add("", "", "", 0, int64(0), int64(0), 0, uint16(0))
	f.Add("x", "y", "z", -1, int64(253_402_300_800), int64(1), -86_000, uint16(0xaaaa))
	f.Fuzz(func(t *testing.T, a, b, c string, code int, sec, nsec int64, zone int, mask uint16) {
		at := time.Unix(sec, nsec).In(time.FixedZone("z", zone))
		pick := func(bit int, s string) string {
			if mask&(1<<bit) != 0 {
				return s
			}
			return ""
		}
		e := &Event{
			V: code & 3, Type: a, Time: at, Customer: b, Call: c,
			Node: pick(0, a), Source: pick(1, b), Peer: pick(2, c), DialedFor: pick(3, a),
			Dial: pick(4, b), Linked: pick(5, c), Direction: pick(6, a), Account: pick(7, b),
			Trunk: pick(8, c), From: Party{User: pick(9, a), Display: pick(10, b), URI: pick(11, c)},
			To: Party{Display: pick(12, a)}, Dialed: pick(13, b), Code: code, Reason: pick(14, c),
			Target: pick(15, a), ReferID: pick(1, c), Playback: pick(2, a), Digit: pick(3, b), Slot: pick(4, c),
		}
		if mask&(1<<5) != 0 {
			e.Contacts = []Contact{{URI: a, Source: b, Expires: at}, {URI: c}}
		} else if mask&(1<<6) != 0 {
			e.Contacts = []Contact{}
		}
		if mask&(1<<7) != 0 {
			e.Park = &Park{Number: a, Kind: b, Code: pick(8, c), Parker: pick(9, a),
				Parked: Party{URI: pick(10, b)}, By: pick(11, c), Since: at.Add(time.Duration(nsec))}
		}
		same(t, e)
	})
}

// same fails t unless AppendJSON and encoding/json agree on e.
func same(t *testing.T, e *Event) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := e.AppendJSON(nil)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("encoding/json error %v, AppendJSON error %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON\n %s\nencoding/json\n %s", got, want)
	}
}

// TestEventJSONOfEveryKind compares a full event of each shape the
// services publish.
func TestEventJSONOfEveryKind(t *testing.T) {
	at := time.Date(2026, 12, 7, 20, 0, 0, 120_000_000, time.UTC)
	for _, e := range []*Event{
		{V: 1, Type: CallStarted, Time: at, Customer: "demo", Call: "n1_a", Node: "n1", Source: SourceCore,
			Direction: Inbound, Account: "200", From: Party{User: "200", Display: "Reception <desk>", URI: "sip:200@demo"},
			To: Party{User: "*70333"}, Dialed: "*70333"},
		{V: 1, Type: RegistrationUpdated, Time: at, Customer: "demo", Call: "200",
			Contacts: []Contact{{URI: "sip:200@127.0.0.1:5062", Source: "127.0.0.1:5062", Expires: at.Add(time.Hour)}}},
		{V: 1, Type: CallParked, Time: at.In(time.FixedZone("x", -5*3600)), Customer: "demo", Call: "n1_a",
			Park: &Park{Number: "333", Kind: "extension", Code: "*71333", Parker: "200", Parked: Party{User: "100"}, Since: at}},
		{V: 1, Type: CallEnded, Time: at, Customer: "demo", Call: "n1_b", Code: 487, Reason: "cancelled"},
	} {
		same(t, e)
	}
}

func BenchmarkEventJSON(b *testing.B) {
	e := &Event{V: 1, Type: CallStarted, Time: time.Now().UTC(), Customer: "bench", Call: "n1_0123456789abcdef",
		Node: "n1", Source: SourceCore, Linked: "n1_0123456789abcdef", Direction: Inbound, Account: "1000",
		From: Party{User: "1000", URI: "sip:1000@127.0.0.1"}, To: Party{User: "2000", URI: "sip:2000@127.0.0.1"}, Dialed: "2000"}
	b.Run("encoding/json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = json.NewEncoder(&buf).Encode(e)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = e.EncodeTo(&buf)
		}
	})
}
