package audio

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpark/callpark/sounds"
)

// counter counts frames and records when they arrived.
type counter struct {
	n       atomic.Int64
	removed atomic.Bool // set by the test once Remove has returned
	late    atomic.Bool // a frame arrived after removed was set
}

func (c *counter) MusicFrame(Frame, Shard) {
	c.n.Add(1)
	if c.removed.Load() {
		c.late.Store(true)
	}
}

// recorder keeps the frames it received.
type recorder struct {
	mu     sync.Mutex
	frames []Frame
	at     []time.Time
	block  time.Duration // sleep this long on the first frame (misbehaving on purpose)
}

func (r *recorder) MusicFrame(f Frame, _ Shard) {
	r.mu.Lock()
	first := len(r.frames) == 0
	r.frames = append(r.frames, f)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	if first && r.block > 0 {
		time.Sleep(r.block)
	}
}

func (r *recorder) snapshot() ([]Frame, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...), append([]time.Time(nil), r.at...)
}

type nop struct{ _ byte } // non-zero size: distinct pointers

func (*nop) MusicFrame(Frame, Shard) {}

func runHub(t *testing.T, pcm []int16) *Hub {
	t.Helper()
	h := NewHub(pcm, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func TestHubEncodesFramesOnce(t *testing.T) {
	pcm := Tone(1000, 130*time.Millisecond, 0.3) // 1040 samples: 7 frames, last padded
	h := NewHub(pcm, nil)
	if len(h.frames) != 7 {
		t.Fatalf("%d frames", len(h.frames))
	}
	for i, f := range h.frames {
		lo := i * FrameSamples
		want := make([]int16, FrameSamples)
		copy(want, pcm[lo:])
		if !bytes.Equal(f.Ulaw, EncodeUlaw(want, nil)) || !bytes.Equal(f.Alaw, EncodeAlaw(want, nil)) {
			t.Errorf("frame %d differs", i)
		}
		if cap(f.Ulaw) != FrameSamples || cap(f.Alaw) != FrameSamples {
			t.Errorf("frame %d can be appended into its neighbour", i)
		}
	}
	if last := h.frames[6].Ulaw; last[FrameSamples-1] != UlawSilence {
		t.Error("last frame not padded with silence")
	}
	silent := NewHub(nil, nil)
	if len(silent.frames) != 1 || silent.frames[0].Alaw[0] != AlawSilence {
		t.Error("empty music does not give a silent frame")
	}
}

func TestHubDeliversFiftyFramesPerSecond(t *testing.T) {
	h := runHub(t, Tone(300, time.Second, 0.3))
	var c counter
	h.Add(&c)
	time.Sleep(500 * time.Millisecond)
	h.Remove(&c)
	if n := c.n.Load(); n < 23 || n > 27 {
		t.Errorf("%d frames in 500 ms, want 23–27", n)
	}
}

func TestHubSameFrameToAll(t *testing.T) {
	h := NewHub(Tone(300, time.Second, 0.3), nil)
	var a, b recorder
	h.Add(&a)
	h.Add(&b)
	h.Add(&a) // no-op
	if h.Len() != 2 {
		t.Fatalf("Len %d after adding a twice", h.Len())
	}
	for n := range int64(5) {
		for _, sh := range h.shards {
			sh.deliver(n)
		}
	}
	fa, _ := a.snapshot()
	fb, _ := b.snapshot()
	if len(fa) != 5 || len(fb) != 5 {
		t.Fatalf("got %d and %d frames", len(fa), len(fb))
	}
	for i := range fa {
		if &fa[i].Ulaw[0] != &fb[i].Ulaw[0] || &fa[i].Ulaw[0] != &h.frames[i].Ulaw[0] {
			t.Errorf("tick %d: listeners got different or copied frames", i)
		}
	}
}

// The frame of a tick is the tick number modulo the music's length, so a
// shard that skips ticks lands where the others are, and the music loops.
func TestHubFrameFollowsTheClockAndLoops(t *testing.T) {
	h := NewHubWith(make([]int16, 10*FrameSamples), nil, HubOptions{Shards: 1})
	var r recorder
	h.Add(&r)
	ticks := []int64{0, 4, 5, 12, -1}
	for _, n := range ticks {
		h.shards[0].deliver(n)
	}
	frames, _ := r.snapshot()
	want := []int{0, 4, 5, 2, 9}
	for i, f := range frames {
		if &f.Ulaw[0] != &h.frames[want[i]].Ulaw[0] {
			t.Errorf("delivery %d is not frame %d", i, want[i])
		}
	}
	if s := h.Stats(); s.Ticks != uint64(len(ticks)) || s.Listeners != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Listeners are spread evenly over the shards, every shard plays the frame
// of the same tick, and each shard's own state gets AfterTick after its
// listeners at every tick.
func TestHubShardsPlayTogether(t *testing.T) {
	var states []*tickCounter
	var rs [6]recorder
	h := NewHubWith(Tone(300, time.Second, 0.3), nil, HubOptions{Shards: 3, NewShard: func() Shard {
		s := new(tickCounter)
		states = append(states, s)
		return s
	}})
	for i := range rs {
		h.Add(&rs[i])
	}
	for _, sh := range h.shards {
		if n := sh.len(); n != 2 {
			t.Errorf("shard %d has %d listeners, want 2", sh.index, n)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	time.Sleep(200 * time.Millisecond)
	for i := range rs {
		h.Remove(&rs[i])
	}
	cancel()
	<-done
	// Same tick, same frame: the i-th frame each listener got after the
	// latest first delivery must be identical across listeners.
	for i := range rs {
		if _, at := rs[i].snapshot(); len(at) < 5 {
			t.Fatalf("listener %d got %d frames in 200 ms", i, len(at))
		}
	}
	f0, _ := rs[0].snapshot()
	for i := 1; i < len(rs); i++ {
		fi, _ := rs[i].snapshot()
		// Align on the first frame both got (shards may start a tick apart).
		off := slicesIndexFrame(fi, f0[2])
		if off < 0 {
			t.Errorf("listener %d never got listener 0's third frame", i)
			continue
		}
		for k := 0; k+off < len(fi) && 2+k < len(f0) && k < 3; k++ {
			if &fi[off+k].Ulaw[0] != &f0[2+k].Ulaw[0] {
				t.Errorf("listener %d is out of step with listener 0", i)
			}
		}
	}
	if len(states) != 3 {
		t.Fatalf("%d shard states, want 3", len(states))
	}
	for i, s := range states {
		if s.n.Load() < 5 {
			t.Errorf("shard %d: AfterTick ran %d times in 200 ms", i, s.n.Load())
		}
	}
}

// tickCounter is shard state counting AfterTick calls.
type tickCounter struct{ n atomic.Int64 }

func (c *tickCounter) AfterTick() { c.n.Add(1) }

func slicesIndexFrame(fs []Frame, f Frame) int {
	for i := range fs {
		if &fs[i].Ulaw[0] == &f.Ulaw[0] {
			return i
		}
	}
	return -1
}

// A listener that blocks (against the rules) delays everyone, but the hub
// then skips to where the music should be instead of bursting the backlog.
func TestHubSlowListenerSkipsNotBursts(t *testing.T) {
	h := runHub(t, Tone(300, time.Second, 0.3))
	r := recorder{block: 110 * time.Millisecond}
	h.Add(&r)
	time.Sleep(300 * time.Millisecond)
	h.Remove(&r)
	_, at := r.snapshot()
	if len(at) < 5 {
		t.Fatalf("only %d frames", len(at))
	}
	// After the stall, at most one stale tick may come early; never a run.
	close := 0
	for i := 2; i < len(at); i++ {
		if at[i].Sub(at[i-1]) < 8*time.Millisecond {
			close++
		}
	}
	if close > 1 {
		t.Errorf("%d deliveries less than 8 ms apart: burst after stall", close)
	}
	if s := h.Stats(); s.Skipped < 3 {
		t.Errorf("skipped %d frames over a 110 ms stall, want ≥ 3", s.Skipped)
	}
}

func TestHubRemoveStopsDelivery(t *testing.T) {
	h := runHub(t, Tone(300, time.Second, 0.3))
	// Many listeners so that ticks take a while and Remove races them.
	others := make([]*nop, 500)
	for i := range others {
		others[i] = new(nop)
		h.Add(others[i])
	}
	cs := make([]*counter, 50)
	for i := range cs {
		cs[i] = new(counter)
		h.Add(cs[i])
	}
	time.Sleep(60 * time.Millisecond)
	for _, c := range cs {
		h.Remove(c)
		c.removed.Store(true)
		time.Sleep(time.Millisecond)
	}
	h.Remove(cs[0]) // idempotent
	time.Sleep(60 * time.Millisecond)
	for i, c := range cs {
		if c.late.Load() {
			t.Errorf("listener %d got a frame after Remove returned", i)
		}
		if c.n.Load() == 0 {
			t.Errorf("listener %d never got a frame", i)
		}
	}
	if h.Len() != len(others) {
		t.Errorf("Len %d", h.Len())
	}
}

func TestHubAddDuringRun(t *testing.T) {
	h := runHub(t, Tone(300, time.Second, 0.3))
	time.Sleep(50 * time.Millisecond) // Run is parked, empty
	for round := range 2 {
		var c counter
		h.Add(&c)
		time.Sleep(100 * time.Millisecond)
		h.Remove(&c)
		if n := c.n.Load(); n < 3 {
			t.Errorf("round %d: %d frames in 100 ms", round, n)
		}
		time.Sleep(50 * time.Millisecond) // empty again: parks again
	}
}

// With no listeners the Run goroutine must be parked on a channel with its
// ticker stopped, both before the first Add and after the last Remove.
func TestHubIdleDoesNotTick(t *testing.T) {
	h := runHub(t, Tone(300, time.Second, 0.3))
	time.Sleep(50 * time.Millisecond)
	assertParked(t, "before Add")
	if s := h.Stats(); s.Ticks != 0 {
		t.Errorf("%d ticks with no listener", s.Ticks)
	}

	var c counter
	h.Add(&c)
	time.Sleep(60 * time.Millisecond)
	h.Remove(&c)
	time.Sleep(60 * time.Millisecond)
	ticks := h.Stats().Ticks
	time.Sleep(100 * time.Millisecond)
	if s := h.Stats(); s.Ticks != ticks {
		t.Errorf("ticked %d times after the last Remove", s.Ticks-ticks)
	}
	assertParked(t, "after Remove")
}

func assertParked(t *testing.T, when string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	found := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if !strings.Contains(g, "(*shard).run(") {
			continue
		}
		found++
		if strings.Contains(g, "(*shard).play(") || !strings.Contains(strings.SplitN(g, "\n", 2)[0], "[select") {
			t.Errorf("%s: hub goroutine not parked:\n%s", when, g)
		}
	}
	if found == 0 {
		t.Errorf("%s: no hub goroutine found", when)
	}
}

func TestHubConcurrentAddRemove(t *testing.T) {
	h := runHub(t, Tone(300, time.Second, 0.3))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				c := new(counter)
				h.Add(c)
				h.Len()
				time.Sleep(time.Millisecond)
				h.Remove(c)
				c.removed.Store(true)
				if c.late.Load() {
					t.Error("frame after Remove")
				}
			}
		})
	}
	wg.Wait()
	if h.Len() != 0 {
		t.Errorf("Len %d", h.Len())
	}
}

func TestHubs(t *testing.T) {
	def := Tone(300, time.Second, 0.3)
	acme := Tone(500, time.Second, 0.3)
	lib := func(class string) ([]int16, bool) {
		switch class {
		case DefaultClass:
			return def, true
		case "acme":
			return acme, true
		}
		return nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hubs := NewHubs(ctx, lib, nil)
	d := hubs.Get("")
	if hubs.Get(DefaultClass) != d || hubs.Get("unknown") != d {
		t.Error("default class and fallback are not one hub")
	}
	a := hubs.Get("acme")
	if a == d || hubs.Get("acme") != a {
		t.Error("acme hub not distinct or not reused")
	}
	// The hub is running: frames arrive.
	var c counter
	a.Add(&c)
	time.Sleep(100 * time.Millisecond)
	a.Remove(&c)
	if c.n.Load() < 3 {
		t.Errorf("%d frames from a Hubs hub", c.n.Load())
	}

	none := NewHubs(ctx, func(string) ([]int16, bool) { return nil, false }, nil)
	if h := none.Get("x"); h == nil || h != none.Get("") || h.frames[0].Ulaw[0] != UlawSilence {
		t.Error("missing default music does not give one silent hub")
	}
}

// The built-in music must never look like the pure tones tests use to check
// bridges (440, 1000, 1400 Hz), must not be silent, and must not be one tone.
func TestBuiltinMusicIsNotATestTone(t *testing.T) {
	lib, err := sounds.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	pcm, _ := lib.Music("")
	test := []float64{440, 1000, 1400}
	dets := []*Detector{NewDetector(440), NewDetector(1000), NewDetector(1400)}
	window := 10 * FrameSamples // 200 ms
	silentWindows := 0
	for off := 0; off+window <= len(pcm); off += window {
		w := pcm[off : off+window]
		if f, ok := DominantTone(w, test...); ok {
			t.Errorf("music at %v looks like a %v Hz tone", time.Duration(off)*time.Second/SampleRate, f)
		}
		if IsSilent(w) {
			silentWindows++
		}
		for _, d := range dets {
			d.Write(w)
			if d.Hits() > 0 {
				t.Errorf("music at %v: %v Hz detector hit", time.Duration(off)*time.Second/SampleRate, d.freq)
				d.Reset()
			}
		}
	}
	if silentWindows > 2 {
		t.Errorf("%d silent 200 ms windows in the music", silentWindows)
	}
	// Broad: no single frequency holds most of the energy of any second (a
	// chord's first notes, alone for a moment, may dominate 200 ms).
	for off := 0; off+SampleRate <= len(pcm); off += SampleRate {
		for f := 100.0; f < 1500; f += 5 {
			if g := Goertzel(pcm[off:off+SampleRate], f); g > DominantShare {
				t.Errorf("music at %d s is dominated by %v Hz (%.2f)", off/SampleRate, f, g)
			}
		}
	}
}

// One tick delivering a frame to 2,000 parked calls.
func BenchmarkHubTick2000(b *testing.B) {
	h := NewHub(Tone(300, time.Second, 0.3), nil)
	for range 2000 {
		h.Add(new(nop))
	}
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		for _, sh := range h.shards {
			sh.deliver(n)
		}
		n++
	}
}

// A tick that comes late delivers the frames it missed, up to MaxCatchUp,
// in order (so a phone's jitter buffer still plays them on time); a later
// one skips them.
func TestHubLateTickCatchesUp(t *testing.T) {
	h := NewHubWith(make([]int16, 10*FrameSamples), nil, HubOptions{Shards: 1})
	h.Add(new(nop))
	sh := h.shards[0]
	for _, c := range []struct{ last, n, from int64 }{
		{5, 6, 6},                           // on time
		{5, 7, 6},                           // one missed: delivered late
		{5, 6 + MaxCatchUp, 6},              // as many as may be caught up
		{5, 7 + MaxCatchUp, 7 + MaxCatchUp}, // more: skipped
	} {
		if got := sh.catchUp(c.last, c.n); got != c.from {
			t.Errorf("tick %d after %d: deliver from %d, want %d", c.n, c.last, got, c.from)
		}
	}
	if s := h.Stats(); s.Late != 1+MaxCatchUp || s.Skipped != 1+MaxCatchUp {
		t.Errorf("late %d, skipped %d; want %d and %d", s.Late, s.Skipped, 1+MaxCatchUp, 1+MaxCatchUp)
	}
}

// TestHubRemoveKeepsTheOthers: removing listeners from the middle of a
// shard's list leaves every other one receiving, each once per tick.
func TestHubRemoveKeepsTheOthers(t *testing.T) {
	h := NewHubWith(Tone(300, time.Second, 0.3), nil, HubOptions{Shards: 1})
	var rs [50]recorder
	for i := range rs {
		h.Add(&rs[i])
	}
	for i := 0; i < len(rs); i += 3 {
		h.Remove(&rs[i])
	}
	h.Remove(&rs[0]) // twice: nothing
	if got, want := h.Len(), len(rs)-17; got != want {
		t.Fatalf("%d listeners, want %d", got, want)
	}
	for range 3 {
		h.shards[0].deliver(1)
	}
	for i := range rs {
		n, _ := rs[i].snapshot()
		want := 3
		if i%3 == 0 {
			want = 0
		}
		if len(n) != want {
			t.Errorf("listener %d got %d frames, want %d", i, len(n), want)
		}
	}
	for i := range rs {
		h.Remove(&rs[i])
	}
	if h.Len() != 0 || len(h.where) != 0 || cap(h.shards[0].ls) > 64 {
		t.Fatalf("after removing all: %d listeners, %d places, capacity %d", h.Len(), len(h.where), cap(h.shards[0].ls))
	}
}
