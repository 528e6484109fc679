package events

import (
	"encoding/json"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the event and command decoders (they
// read whatever arrives on NATS): they must never panic, and what they
// accept must survive a round trip.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"call.started","customer":"demo","call":"c1","from":{"user":"200"}}`,
		`{"v":1,"op":"dial","call":"c1","account":"201","timeout_ms":2000,"bridge":true}`,
		`{"v":2,"type":"x"}`, `{"v":1}`, `[]`, `null`, `{"v":1,"type":"call.parked","park":{"number":"333"}}`,
		`{"v":1,"op":"dial","customer":"demo","call":"a_c1","account":"201","node":"b","bridge":true}`,
		`{"v":1,"op":"identity","call":"n1_x","from":{"user":"201"}}`,
		`{"v":1,"node":"a","epoch":"e1","sip":"127.0.0.1:5071","web":"http://127.0.0.1:9181"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := DecodeEvent(data); err == nil {
			b, err := e.Encode()
			if err != nil {
				t.Fatalf("encode accepted event: %v", err)
			}
			if _, err := DecodeEvent(b); err != nil {
				t.Fatalf("round trip: %v", err)
			}
			same(t, e)
		}
		if c, err := DecodeCommand(data); err == nil {
			b, err := c.Encode()
			if err != nil {
				t.Fatalf("encode accepted command: %v", err)
			}
			if _, err := DecodeCommand(b); err != nil {
				t.Fatalf("round trip: %v", err)
			}
		}
		if a, err := DecodeAnnouncement(data); err == nil {
			if _, err := DecodeAnnouncement(a.Encode()); err != nil {
				t.Fatalf("announcement round trip: %v", err)
			}
		}
		if n := NodeOf(string(data)); n != "" && !ValidNode(n) {
			t.Fatalf("NodeOf(%q) = %q, not a node name", data, n)
		}
		var r Reply
		_ = json.Unmarshal(data, &r)
	})
}

func TestSubjects(t *testing.T) {
	e := &Event{Type: CallParked, Customer: "de.mo", Call: "a*b"}
	if got, want := e.Subject(), "callpark.v1.events.de_mo.app.a_b.call.parked"; got != want {
		t.Fatalf("subject %q, want %q", got, want)
	}
	if got := CommandSubject("n1", OpDial); got != "callpark.v1.core.n1.cmd.dial" {
		t.Fatalf("command subject %q", got)
	}
	if _, err := DecodeEvent([]byte(`{"v":2,"type":"call.started"}`)); err == nil {
		t.Fatal("version 2 accepted")
	}
}
