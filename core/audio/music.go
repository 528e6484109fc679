package audio

// Shared music on hold.
//
// Per-call playback costs a ticker and an encoder per parked call, which caps
// a 2-core machine near 3,000 parked calls. A Hub instead encodes its music
// once, into 20 ms frames in both laws, and a few goroutines (shards, one
// per core by default), each woken by its own tick.Metronome, hand their listeners the same
// frame at each tick: the frame is picked by the clock, so every shard plays
// the same one.
//
// Lock order: Hub.mu (Add and Remove) before shard.mu (a shard's listeners,
// held while a tick delivers). Hubs.mu is taken before nothing else.

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callpark/callpark/internal/tick"
)

// DefaultClass is the music class Hubs falls back to.
const DefaultClass = "default"

// MaxCatchUp is how many missed frames a late tick still delivers (40 ms
// of audio: within what a phone's jitter buffer absorbs); a tick later
// than that skips them.
const MaxCatchUp = 2

// skipLogEvery rate-limits the warning a Hub logs when it falls behind.
const skipLogEvery = 10 * time.Second

// Frame is one 20 ms frame of music in both G.711 laws, FrameSamples bytes
// each. Frames are shared by all listeners and must not be modified; they
// may be retained.
type Frame struct{ Ulaw, Alaw []byte }

// Listener receives music frames. MusicFrame is called from one of the
// hub's pacing goroutines for every listener of that shard in turn, so it
// must not block (hand the frame to the call's media goroutine or a
// non-blocking writer) and must not call Add or Remove on the same hub.
// shard is the state HubOptions.NewShard made for that goroutine (nil
// without NewShard): only that goroutine uses it, so it needs no lock.
// Listener values must be comparable (typically pointers).
type Listener interface {
	MusicFrame(f Frame, shard Shard)
}

// Shard is per-goroutine state of a hub's shard, e.g. a batch of packets
// its listeners queue. AfterTick runs once the shard has handed a tick's
// frame to all of its listeners (to flush what they queued).
type Shard interface {
	AfterTick()
}

// HubStats are counters for monitoring a Hub.
type HubStats struct {
	Listeners int
	Ticks     uint64 // shard ticks that delivered a frame
	Late      uint64 // listener frames delivered late, catching up after a late tick
	Skipped   uint64 // listener frames skipped because a shard fell further behind
}

// HubOptions tune a Hub. The zero value is usable.
type HubOptions struct {
	// Shards is the number of pacing goroutines listeners are spread over;
	// 0 means runtime.GOMAXPROCS(0). All shards play the same frame at the
	// same tick: the frame is chosen by the clock, not by counting.
	Shards int
	// NewShard, when set, makes the state of each shard of each hub; its
	// AfterTick runs on the shard's goroutine after every tick delivered.
	NewShard func() Shard
	// Realtime, when above 0, runs each shard on a thread of its own at
	// this real-time priority (tick.Realtime), woken by its own kernel
	// timer (tick.NewThreadMetronome). A shard whose thread the kernel
	// refuses the priority paces as without it.
	Realtime int
}

// Hub plays one music class to any number of listeners, spread over shards
// that each pace their own listeners. Create it with NewHub and start it
// with Run.
type Hub struct {
	log      *slog.Logger
	frames   []Frame // immutable
	epoch    time.Time
	shards   []*shard
	realtime int // HubOptions.Realtime

	mu    sync.Mutex // serialises Add and Remove
	where map[Listener]place
	peak  int // the most listeners since where was made

	running atomic.Bool
	ticks   atomic.Uint64
	late    atomic.Uint64
	skipped atomic.Uint64
}

// place is where a listener is: its shard and its index in the shard's list.
type place struct {
	sh *shard
	i  int
}

// shard is one pacing goroutine and its listeners. The list is changed in
// place (appended to, an element removed by moving the last one into its
// slot) under mu, which a tick holds while it delivers: a copy of the list
// per change, which readers could have used without the lock, made a
// ramp of 5,000 parked calls allocate 200 MB (each copy the size of the
// list).
type shard struct {
	hub    *Hub
	index  int
	offset time.Duration // of its tick grid from the hub's epoch
	state  Shard         // nil without HubOptions.NewShard
	mu     sync.Mutex    // guards ls; held while a tick delivers
	ls     []Listener
	n      atomic.Int64  // len(ls), read without mu
	wake   chan struct{} // capacity 1; Add pokes a parked run
}

// NewHub encodes pcm (8 kHz) into frames, padding the last one with silence.
// Empty pcm gives a hub that plays silence.
func NewHub(pcm []int16, log *slog.Logger) *Hub {
	return NewHubWith(pcm, log, HubOptions{})
}

// NewHubWith is NewHub with options.
func NewHubWith(pcm []int16, log *slog.Logger, o HubOptions) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := max(1, (len(pcm)+FrameSamples-1)/FrameSamples)
	padded := make([]int16, n*FrameSamples)
	copy(padded, pcm)
	ulaw := EncodeUlaw(padded, nil)
	alaw := EncodeAlaw(padded, nil)
	frames := make([]Frame, n)
	for i := range frames {
		lo, hi := i*FrameSamples, (i+1)*FrameSamples
		frames[i] = Frame{Ulaw: ulaw[lo:hi:hi], Alaw: alaw[lo:hi:hi]}
	}
	if len(pcm) == 0 {
		log.Warn("music hub has no audio; playing silence")
	}
	k := o.Shards
	if k <= 0 {
		k = runtime.GOMAXPROCS(0)
	}
	h := &Hub{log: log, frames: frames, epoch: time.Now(), where: make(map[Listener]place), realtime: o.Realtime}
	h.shards = make([]*shard, k)
	for i := range h.shards {
		h.shards[i] = &shard{hub: h, index: i, wake: make(chan struct{}, 1),
			offset: time.Duration(i) * FrameDuration / time.Duration(k)}
		if o.NewShard != nil {
			h.shards[i].state = o.NewShard()
		}
	}
	return h
}

// Shards returns the number of pacing goroutines.
func (h *Hub) Shards() int { return len(h.shards) }

// Add makes l receive frames from the next tick on, on the shard with the
// fewest listeners. Adding a listener that is already there does nothing.
// It waits for a tick that is delivering on that shard.
func (h *Hub) Add(l Listener) {
	h.mu.Lock()
	if _, ok := h.where[l]; ok {
		h.mu.Unlock()
		return
	}
	sh := h.shards[0]
	for _, x := range h.shards[1:] {
		if x.n.Load() < sh.n.Load() {
			sh = x
		}
	}
	sh.mu.Lock()
	h.where[l] = place{sh, len(sh.ls)}
	h.peak = max(h.peak, len(h.where))
	sh.ls = append(sh.ls, l)
	sh.n.Store(int64(len(sh.ls)))
	sh.mu.Unlock()
	h.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// Remove stops delivery to l: once Remove returns, l receives no more frames.
// Removing a listener that is not there does nothing.
func (h *Hub) Remove(l Listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.where[l]
	if !ok {
		return
	}
	delete(h.where, l)
	if len(h.where) == 0 && h.peak > 256 {
		// A Go map keeps the room of its largest size: the hub's last
		// listener gone, a burst's thousands of places go with it.
		h.where, h.peak = make(map[Listener]place), 0
	}
	sh := p.sh
	sh.mu.Lock() // waits out a tick delivering
	last := len(sh.ls) - 1
	if p.i != last {
		moved := sh.ls[last]
		sh.ls[p.i] = moved
		h.where[moved] = place{sh, p.i}
	}
	sh.ls[last] = nil
	sh.ls = sh.ls[:last]
	if cap(sh.ls) > 64 && len(sh.ls) < cap(sh.ls)/4 {
		// A load gone: give its array back.
		sh.ls = append(make([]Listener, 0, 2*len(sh.ls)), sh.ls...)
	}
	sh.n.Store(int64(len(sh.ls)))
	sh.mu.Unlock()
}

// Len returns the number of listeners.
func (h *Hub) Len() int {
	n := 0
	for _, sh := range h.shards {
		n += sh.len()
	}
	return n
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{Listeners: h.Len(), Ticks: h.ticks.Load(), Late: h.late.Load(), Skipped: h.skipped.Load()}
}

func (sh *shard) len() int { return int(sh.n.Load()) }

// Run paces the hub until ctx is done: every 20 ms each listener receives the
// current frame. A shard with no listeners stops its metronome and sleeps until
// Add. A tick that comes late (a busy machine: the scheduler, other
// processes) delivers the frames it missed, up to MaxCatchUp of them, back
// to back and in order: each stream's packets carry consecutive sequence
// numbers and timestamps, so a phone's jitter buffer plays them on time and
// nothing is lost. A shard further behind (a stalled machine, a slow
// listener) skips the missed frames rather than delivering a burst longer
// than a jitter buffer holds, so listeners stay in real time. Run must not
// be called again while it is running; a second concurrent call returns at
// once.
func (h *Hub) Run(ctx context.Context) {
	if !h.running.CompareAndSwap(false, true) {
		h.log.Error("music hub Run called twice")
		return
	}
	defer h.running.Store(false)
	var wg sync.WaitGroup
	for _, sh := range h.shards {
		wg.Go(func() { sh.run(ctx) })
	}
	wg.Wait()
}

func (sh *shard) run(ctx context.Context) {
	onThread := false
	if p := sh.hub.realtime; p > 0 {
		if err := tick.Realtime(p); err != nil {
			sh.hub.log.Debug("music shard paces at normal priority", "shard", sh.index, "err", err)
		} else {
			onThread = true // this goroutine's thread, until it returns
		}
	}
	for {
		for sh.len() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-sh.wake:
			}
		}
		if !sh.play(ctx, onThread) {
			return
		}
	}
}

// tick is the number of the frame period now falls in on the shard's
// grid: the hub's epoch shifted by the shard's offset. Shards are spread
// evenly over the 20 ms (shard i of k starts i/k of a frame later), so
// that their sends do not all contend at one instant; a listener's music
// is the same frame sequence whichever shard it is on.
func (sh *shard) tick(now time.Time) int64 {
	return int64(math.Round(float64(now.Sub(sh.hub.epoch)-sh.offset) / float64(FrameDuration)))
}

// play ticks until the shard is empty (true) or ctx is done (false);
// onThread: the goroutine is locked to a real-time thread, which its
// metronome wakes directly.
func (sh *shard) play(ctx context.Context, onThread bool) bool {
	h := sh.hub
	// Tick on the hub's frame grid, so that ticks fall near whole frame
	// periods and rounding them is stable. A Metronome, not a Ticker: it
	// keeps time while the garbage collector marks (see tick.Metronome).
	phase := (time.Since(h.epoch) - sh.offset) % FrameDuration
	if phase < 0 {
		phase += FrameDuration
	}
	newMetronome := tick.NewMetronome
	if onThread {
		newMetronome = tick.NewThreadMetronome
	}
	m := newMetronome(ctx, FrameDuration-phase, FrameDuration)
	defer m.Stop()
	if _, ok := m.Wait(); !ok {
		return false
	}
	last := sh.tick(time.Now())
	if sh.deliver(last) == 0 {
		return true
	}
	var lastWarn time.Time
	var unreported uint64
	fellBack := false
	for {
		now, ok := m.Wait()
		if !ok {
			return false
		}
		if !fellBack {
			if err := m.FellBack(); err != nil {
				h.log.Error("music pacing lost its kernel timer; keeping time with a Go timer", "err", err, "shard", sh.index)
				fellBack = true
			}
		}
		n := sh.tick(now)
		if n <= last {
			continue // a stale tick after a stall: already caught up
		}
		from := sh.catchUp(last, n)
		if skipped := uint64(from - last - 1); skipped > 0 {
			unreported += skipped
			if now.Sub(lastWarn) >= skipLogEvery {
				h.log.Warn("music hub fell behind; frames skipped",
					"skipped", unreported, "listeners", sh.len(), "shard", sh.index)
				lastWarn, unreported = now, 0
			}
		}
		last = n
		for k := from; k <= n; k++ {
			if sh.deliver(k) == 0 {
				return true
			}
		}
	}
}

// catchUp returns the first tick to deliver when tick n comes after tick
// last: the ones missed in between when there are at most MaxCatchUp of
// them (counted late), else n alone (the missed ones counted skipped).
func (sh *shard) catchUp(last, n int64) int64 {
	missed := uint64(n - last - 1)
	listeners := uint64(sh.len())
	switch {
	case missed == 0:
		return n
	case missed <= MaxCatchUp:
		sh.hub.late.Add(missed * listeners)
		return last + 1
	default:
		sh.hub.skipped.Add(missed * listeners)
		return n
	}
}

// frame returns the frame of tick n.
func (h *Hub) frame(n int64) Frame {
	m := int64(len(h.frames))
	return h.frames[((n%m)+m)%m]
}

// deliver hands tick n's frame to every listener of the shard, then runs
// the shard state's AfterTick, and returns how many listeners it reached.
func (sh *shard) deliver(n int64) int {
	h := sh.hub
	f := h.frame(n)
	sh.mu.Lock()
	reached := len(sh.ls)
	for _, l := range sh.ls {
		l.MusicFrame(f, sh.state)
	}
	if sh.state != nil && reached > 0 {
		sh.state.AfterTick()
	}
	sh.mu.Unlock()
	if reached > 0 {
		h.ticks.Add(1)
	}
	return reached
}

// Hubs holds one Hub per music class, created on first use and run until the
// context given to NewHubs is done.
type Hubs struct {
	ctx  context.Context
	lib  func(class string) ([]int16, bool)
	log  *slog.Logger
	opts HubOptions

	mu   sync.Mutex
	hubs map[string]*Hub
}

// NewHubs returns an empty set of hubs that looks music up with lib (for
// example a sounds.Library's Music method).
func NewHubs(ctx context.Context, lib func(class string) ([]int16, bool), log *slog.Logger) *Hubs {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hubs{ctx: ctx, lib: lib, log: log, hubs: make(map[string]*Hub)}
}

// NewHubsWith is NewHubs whose hubs are made with o.
func NewHubsWith(ctx context.Context, lib func(class string) ([]int16, bool), log *slog.Logger, o HubOptions) *Hubs {
	h := NewHubs(ctx, lib, log)
	h.opts = o
	return h
}

// Stats sums the stats of every hub.
func (h *Hubs) Stats() HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sum HubStats
	for _, hub := range h.hubs {
		s := hub.Stats()
		sum.Listeners += s.Listeners
		sum.Ticks += s.Ticks
		sum.Late += s.Late
		sum.Skipped += s.Skipped
	}
	return sum
}

// Get returns the hub of class, creating and starting it if needed. "" means
// DefaultClass; a class lib does not know falls back to DefaultClass (not
// remembered, so a class loaded later is picked up). Get never returns nil:
// if even the default class is missing, it returns a hub playing silence.
func (h *Hubs) Get(class string) *Hub {
	if class == "" {
		class = DefaultClass
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hub, ok := h.hubs[class]; ok {
		return hub
	}
	pcm, ok := h.lib(class)
	if !ok && class != DefaultClass {
		h.log.Warn("unknown music class; using default", "class", class)
		class = DefaultClass
		if hub, ok := h.hubs[class]; ok {
			return hub
		}
		pcm, ok = h.lib(class)
	}
	if !ok {
		h.log.Error("no default music; playing silence")
	}
	hub := NewHubWith(pcm, h.log.With("music", class), h.opts)
	h.hubs[class] = hub
	go hub.Run(h.ctx)
	return hub
}
