package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/callpark/callpark/events"
)

// stream is one open event stream.
type stream struct {
	kick chan struct{} // an event arrived: the board is due for an update
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	notices []Notice
	// cursor is the sequence of the last event taken in: the id of what
	// is sent next, and where a reconnecting browser resumes.
	cursor uint64
}

// Notice is something a receptionist should see happen.
type Notice struct {
	// Kind: parked, retrieved, returned, abandoned, return_failed.
	Kind    string    `json:"kind"`
	Text    string    `json:"text"`
	Time    time.Time `json:"time"`
	Caller  string    `json:"caller,omitempty"`
	Number  string    `json:"number,omitempty"`
	Account string    `json:"account,omitempty"`
}

func (st *stream) close() { st.once.Do(func() { close(st.done) }) }

// maxNotices bounds the notices held for one send (a long replay keeps
// the latest).
const maxNotices = 100

// noticeAge is how old an event may be and still make a notice (a replay
// after a long disconnection does not flood the page with old news).
const noticeAge = 15 * time.Minute

func (st *stream) poke(seq uint64, n *Notice) {
	st.mu.Lock()
	if seq > st.cursor {
		st.cursor = seq
	}
	if n != nil {
		if len(st.notices) == maxNotices {
			st.notices = append(st.notices[:0], st.notices[1:]...)
		}
		st.notices = append(st.notices, *n)
	}
	st.mu.Unlock()
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// take returns the notices gathered since the last send and the cursor.
func (st *stream) take() ([]Notice, uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := st.notices
	st.notices = nil
	return n, st.cursor
}

// resumeAfter is the sequence a reconnecting browser saw last: EventSource
// sends it as Last-Event-ID by itself; the page passes ?after= when it
// opens a new stream after the old one closed. 0: a fresh start.
func resumeAfter(r *http.Request) uint64 {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// heartbeat keeps proxies from closing an idle stream.
const heartbeat = 15 * time.Second

// events serves the Server-Sent Events stream of x's board.
func (s *Server) events(w http.ResponseWriter, r *http.Request, x *session) {
	rc := http.NewResponseController(w)
	st := &stream{kick: make(chan struct{}, 1), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "closing", "the console is shutting down")
		return
	}
	s.streams[st] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		s.mu.Unlock()
	}()
	now := s.cfg.Now
	stop, from, err := s.cfg.Follow(x.customer, resumeAfter(r), func(seq uint64, e *events.Event) {
		n := notice(e, x)
		if n != nil && now().Sub(e.Time) > noticeAge {
			n = nil
		}
		st.poke(seq, n)
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no event feed: "+err.Error())
		return
	}
	defer stop()
	st.mu.Lock()
	st.cursor = max(st.cursor, from)
	st.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Every message's id is the cursor: the sequence of the last event
	// the board and notices sent so far account for.
	var id uint64
	send := func(typ string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", id, typ, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	sendBoard := func() bool {
		b, err := s.board(x)
		if err != nil {
			return send("failure", map[string]string{"message": err.Error()})
		}
		return send("board", b)
	}
	// flush sends the notices gathered so far, then the board, all under
	// the id of the last event they account for.
	flush := func() bool {
		notices, cursor := st.take()
		id = cursor
		for _, n := range notices {
			if !send("notice", n) {
				return false
			}
		}
		return sendBoard()
	}
	// A reconnecting browser retries after a second. What it missed is
	// being replayed: notices so far go now, the rest with the next board.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	if !flush() {
		return
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-st.done:
			return
		case <-beat.C:
			if s.sessions.get(x.id) == nil {
				return // signed out elsewhere
			}
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-st.kick:
			// Coalesce a burst of events into one board.
			t := time.NewTimer(s.cfg.Coalesce)
			select {
			case <-t.C:
			case <-st.done:
				t.Stop()
				return
			case <-r.Context().Done():
				t.Stop()
				return
			}
			if s.sessions.get(x.id) == nil {
				return
			}
			if !flush() {
				return
			}
		}
	}
}

// notice is what e means to session x's receptionist, or nil.
func notice(e *events.Event, x *session) *Notice {
	p := e.Park
	if p == nil {
		return nil
	}
	n := &Notice{Time: e.Time, Caller: p.Parked.String(), Number: p.Number}
	where := p.Number
	if p.Kind == "slot" {
		where = "slot " + p.Number
	}
	switch e.Type {
	case events.CallParked:
		if p.Parker == x.account && x.account != "" {
			return nil // the receptionist did it
		}
		n.Kind, n.Account = "parked", p.Parker
		n.Text = fmt.Sprintf("%s parked %s on %s", p.Parker, n.Caller, where)
	case events.CallRetrieved:
		n.Kind, n.Account = "retrieved", p.By
		n.Text = fmt.Sprintf("%s picked up %s from %s", p.By, n.Caller, where)
	case events.CallReturned:
		n.Kind, n.Account = "returned", e.Account
		n.Text = fmt.Sprintf("%s rang back to %s after waiting on %s", n.Caller, p.Parker, where)
	case events.CallAbandoned:
		n.Kind = "abandoned"
		n.Text = fmt.Sprintf("%s hung up while parked on %s", n.Caller, where)
	case events.CallReturnFailed:
		if e.Reason != "gave_up" {
			return nil
		}
		n.Kind = "return_failed"
		n.Text = fmt.Sprintf("nobody took %s back from %s: hung up", n.Caller, where)
	default:
		return nil
	}
	return n
}
