package pbx_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/pbx/pbxtest"
)

// benchCustomer adds customer "bench" with accounts 100..100+n-1 (password
// "pw<ext>") to a copy of the sample dialplans.
func benchCustomer(b testing.TB, n int) string {
	dir := writeDialplans(b, "")
	var sb strings.Builder
	sb.WriteString("kind: customer\nname: bench\ndomain: bench.callpark.test\nrule: pbx-default\nfeatures:\n  parking: true\naccounts:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - extension: \"%d\"\n    password: \"pw%d-secret\"\n", 100+i, 100+i)
	}
	if err := os.WriteFile(filepath.Join(dir, "customers", "bench.yaml"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkParkRetrieve runs park+retrieve cycles, 8 at a time, on one
// node and on a 3-node cluster (the caller's leg on node a, the parker and
// retriever on the last node: every cycle dials, parks and retrieves
// across nodes). A cycle: X calls Y, Y parks X by REFER to *70, Y
// retrieves with *71*<number>, both hang up. It reports cycles/s, the
// writes to the parked-calls bucket per cycle and the lease renewals per
// second (one node keeps its parks in memory only: 0).
func BenchmarkParkRetrieve(b *testing.B) {
	const workers = 8
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			dir := benchCustomer(b, 2*workers)
			var nodes []*pbxtest.PBX
			if n == 1 {
				nodes = []*pbxtest.PBX{pbxtest.Start(b, pbxtest.WithDialplans(dir))}
			} else {
				nodes = pbxtest.StartCluster(b, n, pbxtest.WithDialplans(dir))
			}
			first, last := nodes[0], nodes[len(nodes)-1]
			owner := pbxtest.Owner(nodes, "bench")
			if owner == nil {
				owner = first
			}
			type pair struct{ x, y *pbxtest.Phone }
			pairs := make([]pair, workers)
			for i := range pairs {
				pairs[i] = pair{
					first.Phone(b, "bench", fmt.Sprint(100+2*i)),
					last.Phone(b, "bench", fmt.Sprint(101+2*i)),
				}
			}
			for _, p := range pairs {
				pbxtest.WaitLocated(b, nodes, last, "bench", p.y.Ext)
			}
			before := kvWrites(b, first)
			b.ResetTimer()
			began := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed error
			next := make(chan struct{})
			go func() {
				for range b.N {
					next <- struct{}{}
				}
				close(next)
			}()
			for _, p := range pairs {
				wg.Go(func() {
					for range next {
						if err := cycle(owner, p.x, p.y); err != nil {
							mu.Lock()
							failed = err
							mu.Unlock()
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(began)
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cycles/s")
			after := kvWrites(b, first)
			b.ReportMetric(float64(after[control.ParkedBucket]-before[control.ParkedBucket])/float64(b.N), "parked-kv-writes/cycle")
			b.ReportMetric(float64(after[control.LeaseBucket]-before[control.LeaseBucket])/elapsed.Seconds(), "lease-kv-writes/s")
		})
	}
}

// cycle is one park and retrieval of x's call by y.
func cycle(owner *pbxtest.PBX, x, y *pbxtest.Phone) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answered := make(chan *pbxtest.Call, 1)
	go func() {
		if c, err := y.AnswerErr(ctx); err == nil {
			answered <- c
		}
		close(answered)
	}()
	cx, err := x.DialErr(ctx, y.Ext)
	if err != nil {
		return fmt.Errorf("%s dials %s: %w", x.Ext, y.Ext, err)
	}
	cy := <-answered
	if cy == nil {
		return fmt.Errorf("%s did not get the call", y.Ext)
	}
	if code, err := cy.TransferErr(ctx, "*70"); code != 200 {
		return fmt.Errorf("%s parks: %d %v", y.Ext, code, err)
	}
	number, leg := "", ""
	for number == "" && ctx.Err() == nil {
		for _, p := range owner.Control().State().ParkedList("bench") {
			if p.Party.User == x.Ext {
				number, leg = p.Number, p.Channel
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	cr, err := y.DialErr(ctx, "*71*"+number)
	if err != nil {
		return fmt.Errorf("%s retrieves %s: %w", y.Ext, number, err)
	}
	// Hang up once the retrieval is through (a retriever gone before its
	// answer is confirmed gives the call back to the park).
	for ctx.Err() == nil {
		if ch := owner.Control().State().Channel(leg); ch == nil || ch.Peer != "" && ch.State == "up" {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cr.Hangup()
	select {
	case <-cx.Ended():
	case <-ctx.Done():
		return fmt.Errorf("%s: call not ended", x.Ext)
	}
	return nil
}

// kvWrites is how many writes (puts, deletes) each callpark KV bucket
// has taken: its stream's last sequence (0 for a bucket not in use).
func kvWrites(b testing.TB, p *pbxtest.PBX) map[string]uint64 {
	nc, err := nats.Connect(p.NATSURL(), p.ServiceAuth())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	out := map[string]uint64{}
	for _, bucket := range []string{control.ParkedBucket, control.LeaseBucket, control.LocationBucket} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, "KV_"+bucket)
		if err == nil {
			if info, err := st.Info(ctx); err == nil {
				out[bucket] = info.State.LastSeq
			}
		}
		cancel()
	}
	return out
}
