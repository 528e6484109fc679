package pbx_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// TestStartReportsWhatFailed: a cluster node whose SIP port is taken says
// so and stops, rather than reporting what the failure cancelled behind
// it: its control plane, still creating its buckets (waiting for the
// cluster's quorum), used to end with "bucket CALLPARK_PARKED: context
// canceled", and the port was never named.
func TestStartReportsWhatFailed(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfgs := pbxtest.ClusterConfigs(t, 3)
	cfgs[0].SIPPort = taken.LocalAddr().(*net.UDPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	done := make([]chan error, len(cfgs))
	for i, cfg := range cfgs {
		p, err := pbx.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		done[i] = make(chan error, 1)
		go func() { done[i] <- p.Run(ctx) }()
	}
	defer func() {
		cancel()
		for _, d := range done[1:] {
			<-d
		}
	}()
	select {
	case err := <-done[0]:
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("node a with its SIP port taken: %v, want the port's error", err)
		}
		t.Logf("node a: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("node a, its SIP port taken, is still running")
	}
}
