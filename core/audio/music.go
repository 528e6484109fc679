package audio

// Shared music on hold.
//
// Per-call playback costs a ticker and an encoder per parked call, which caps
// a 2-core machine near 3,000 parked calls. A Hub instead encodes its music
// once, into 20 ms frames in both laws, and one goroutine with one ticker
// hands every listener the same frame at each tick.
//
// Lock order: Hub.mu (writers of the listener list) and Hub.deliverMu (held
// while a tick delivers) are never held together. Hubs.mu is taken before
// nothing else.

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultClass is the music class Hubs falls back to.
const DefaultClass = "default"

// skipLogEvery rate-limits the warning a Hub logs when it falls behind.
const skipLogEvery = 10 * time.Second

// Frame is one 20 ms frame of music in both G.711 laws, FrameSamples bytes
// each. Frames are shared by all listeners and must not be modified; they
// may be retained.
type Frame struct{ Ulaw, Alaw []byte }

// Listener receives music frames. MusicFrame is called from the hub's
// goroutine for every listener in turn, so it must not block (hand the frame
// to the call's media goroutine or a non-blocking writer) and must not call
// Add or Remove on the same hub. Listener values must be comparable
// (typically pointers): the hub finds them with ==.
type Listener interface {
	MusicFrame(f Frame)
}

// HubStats are counters for monitoring a Hub.
type HubStats struct {
	Listeners int
	Ticks     uint64 // ticks that delivered a frame
	Skipped   uint64 // frames skipped because the loop fell behind
}

// Hub plays one music class to any number of listeners. Create it with
// NewHub and start its pacing loop with Run.
type Hub struct {
	log    *slog.Logger
	frames []Frame // immutable

	mu        sync.Mutex                 // serialises Add and Remove
	listeners atomic.Pointer[[]Listener] // copy-on-write; never modified in place
	deliverMu sync.Mutex                 // held while a tick delivers
	wake      chan struct{}              // capacity 1; Add pokes a parked Run

	running atomic.Bool
	pos     int // next frame index; owned by the Run goroutine
	ticks   atomic.Uint64
	skipped atomic.Uint64
}

// NewHub encodes pcm (8 kHz) into frames, padding the last one with silence.
// Empty pcm gives a hub that plays silence.
func NewHub(pcm []int16, log *slog.Logger) *Hub {
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
	return &Hub{log: log, frames: frames, wake: make(chan struct{}, 1)}
}

// Add makes l receive frames from the next tick on. Adding a listener that is
// already there does nothing.
func (h *Hub) Add(l Listener) {
	h.mu.Lock()
	old := h.list()
	for _, x := range old {
		if x == l {
			h.mu.Unlock()
			return
		}
	}
	next := make([]Listener, len(old), len(old)+1)
	copy(next, old)
	next = append(next, l)
	h.listeners.Store(&next)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Remove stops delivery to l: once Remove returns, l receives no more frames.
// Removing a listener that is not there does nothing.
func (h *Hub) Remove(l Listener) {
	h.mu.Lock()
	old := h.list()
	i := -1
	for j, x := range old {
		if x == l {
			i = j
			break
		}
	}
	if i < 0 {
		h.mu.Unlock()
		return
	}
	next := make([]Listener, 0, len(old)-1)
	next = append(next, old[:i]...)
	next = append(next, old[i+1:]...)
	h.listeners.Store(&next)
	h.mu.Unlock()
	// Wait out a tick that loaded the old list before the swap.
	h.deliverMu.Lock()
	h.deliverMu.Unlock() //nolint:staticcheck // an empty critical section is the barrier
}

// Len returns the number of listeners.
func (h *Hub) Len() int { return len(h.list()) }

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	return HubStats{Listeners: h.Len(), Ticks: h.ticks.Load(), Skipped: h.skipped.Load()}
}

func (h *Hub) list() []Listener {
	if p := h.listeners.Load(); p != nil {
		return *p
	}
	return nil
}

// Run paces the hub until ctx is done: every 20 ms each listener receives the
// current frame. While the hub has no listeners the ticker is stopped and Run
// sleeps until Add. If the loop falls behind (a slow listener, a stalled
// machine) it skips the missed frames rather than delivering a burst, so
// listeners stay in real time. Run must not be called again while it is
// running; a second concurrent call returns at once.
func (h *Hub) Run(ctx context.Context) {
	if !h.running.CompareAndSwap(false, true) {
		h.log.Error("music hub Run called twice")
		return
	}
	defer h.running.Store(false)
	for {
		for h.Len() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.wake:
			}
		}
		if !h.play(ctx) {
			return
		}
	}
}

// play ticks until the hub is empty (true) or ctx is done (false).
func (h *Hub) play(ctx context.Context) bool {
	ticker := time.NewTicker(FrameDuration)
	defer ticker.Stop()
	start := time.Now()
	var last int64 // index of the last tick delivered; tick 0 is start
	var lastWarn time.Time
	var unreported uint64
	for {
		select {
		case <-ctx.Done():
			return false
		case now := <-ticker.C:
			// Where we should be, by the clock, not by counting ticks.
			n := int64(math.Round(float64(now.Sub(start)) / float64(FrameDuration)))
			if n <= last {
				continue // a stale tick after a stall: already caught up
			}
			if missed := uint64(n - last - 1); missed > 0 {
				unreported += missed
				if now.Sub(lastWarn) >= skipLogEvery {
					h.log.Warn("music hub fell behind; frames skipped",
						"skipped", unreported, "listeners", h.Len())
					lastWarn, unreported = now, 0
				}
			}
			if h.step(int(n-last)) == 0 {
				return true
			}
			last = n
		}
	}
}

// step advances the music by frames frames (the ones in between are
// skipped), delivers the current frame to every listener and returns how
// many listeners it reached.
func (h *Hub) step(frames int) int {
	if frames > 1 {
		h.skipped.Add(uint64(frames - 1))
	}
	h.pos = (h.pos + frames - 1) % len(h.frames)
	f := h.frames[h.pos]
	h.pos = (h.pos + 1) % len(h.frames)

	h.deliverMu.Lock()
	ls := h.list()
	for _, l := range ls {
		l.MusicFrame(f)
	}
	h.deliverMu.Unlock()
	if len(ls) > 0 {
		h.ticks.Add(1)
	}
	return len(ls)
}

// Hubs holds one Hub per music class, created on first use and run until the
// context given to NewHubs is done.
type Hubs struct {
	ctx context.Context
	lib func(class string) ([]int16, bool)
	log *slog.Logger

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
	hub := NewHub(pcm, h.log.With("music", class))
	h.hubs[class] = hub
	go hub.Run(h.ctx)
	return hub
}
