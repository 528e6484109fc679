package console

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// bigControl is a control plane with 50 parked calls (10 on slots, 40 on
// extensions) and a call on every other extension.
type bigControl struct {
	stubControl
	cust *dialplans.Customer
}

func (b bigControl) Slots(string) ([]control.SlotState, error) {
	var out []control.SlotState
	for i := 1; i <= 10; i++ {
		n := fmt.Sprint(i)
		out = append(out, control.SlotState{Slot: b.cust.Slots[n], Parked: parkedCall(state.KindSlot, n)})
	}
	return out, nil
}

func (b bigControl) Parked(string) ([]*state.Parked, error) {
	var out []*state.Parked
	for i := 1; i <= 10; i++ {
		out = append(out, parkedCall(state.KindSlot, fmt.Sprint(i)))
	}
	for i := range 40 {
		out = append(out, parkedCall(state.KindExtension, fmt.Sprint(1000+i)))
	}
	return out, nil
}

func (b bigControl) Calls(_, account string) ([]control.Call, error) {
	if account[len(account)-1]%2 == 0 {
		return nil, nil
	}
	leg := &state.Channel{ID: "leg-" + account, Account: account, State: state.StateUp, Direction: events.Inbound, Created: time.Now()}
	peer := &state.Channel{ID: "peer-" + account, State: state.StateUp, From: events.Party{User: "+15550001111", Display: "Client"}}
	return []control.Call{{Leg: leg, Peer: peer}}, nil
}

func parkedCall(kind, n string) *state.Parked {
	return &state.Parked{Customer: "big", Key: kind + n, Kind: kind, Number: n, Code: "71" + n, Channel: "c" + n,
		Parker: "1001", Party: events.Party{User: "+15551234567", Display: "A caller"}, Since: time.Now(), Due: time.Now().Add(time.Minute)}
}

// BenchmarkBoard200x50 builds and encodes the board of a customer with 200
// extensions and 50 parked calls: what every event costs each open console.
func BenchmarkBoard200x50(b *testing.B) {
	dir := b.TempDir()
	src := "../../dialplans/sample"
	for _, f := range []string{"rules/pbx-default.yaml"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			b.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	var y strings.Builder
	y.WriteString("kind: customer\nname: big\ndomain: big.test\nrule: pbx-default\nfeatures:\n  api: true\n  auto_retrieve:\n    enabled: true\napi:\n  token: big-token-0123456789\naccounts:\n")
	for i := range 200 {
		fmt.Fprintf(&y, "  - extension: \"%d\"\n    name: Person %d\n    password: secret-%d\n", 1000+i, i, i)
	}
	y.WriteString("slots:\n")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&y, "  - number: \"%d\"\n", i)
	}
	os.MkdirAll(filepath.Join(dir, "customers"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "customers", "big.yaml"), []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	set, err := dialplans.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{
		Control:   bigControl{cust: set.Customer("big")},
		Dialplans: func() *dialplans.Set { return set },
		Follow:    func(string, uint64, func(uint64, *events.Event)) (func(), uint64, error) { return func() {}, 0, nil },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	x := s.sessions.create("big", "1001", "Person 1", true)
	size := 0
	for b.Loop() {
		bd, err := s.board(x)
		if err != nil {
			b.Fatal(err)
		}
		data, _ := json.Marshal(bd)
		size = len(data)
	}
	b.ReportMetric(float64(size), "bytes/board")
}
