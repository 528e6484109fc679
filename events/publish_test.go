package events

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
)

// BenchmarkPublish: one core event published to a NATS server with a
// subscriber on every event (the event stream's place).
func BenchmarkPublish(b *testing.B) {
	_, bus, _ := streamBus(b, b.TempDir())
	sub, err := bus.Conn().Subscribe(AllEvents, func(*nats.Msg) {})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	e := Event{Type: CallAnswered, Source: SourceCore, Customer: "bench", Call: "n1-1234567", Linked: "n1-1234567",
		Direction: "inbound", Account: "100", From: Party{User: "100", Display: "Reception", URI: "sip:100@bench"}, To: Party{User: "200"}, Dialed: "200"}
	b.ReportAllocs()
	for b.Loop() {
		ev := e
		bus.Publish(&ev)
	}
}

// EncodeTo writes what Encode returns, after what the buffer holds.
func TestEncodeToIsEncode(t *testing.T) {
	e := Event{Type: CallParked, Customer: "demo", Call: "n1-1", Reason: "<&>", Park: &Park{Number: "333", Kind: "extension"}}
	want, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString("x")
	if err := e.EncodeTo(&buf); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "x"+string(want) {
		t.Fatalf("EncodeTo wrote %q, want %q", got[1:], want)
	}
}
