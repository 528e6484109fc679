package console

import (
	"encoding/json"
	"fmt"
	"net/http"
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

func (st *stream) poke(n *Notice) {
	if n != nil {
		st.mu.Lock()
		if len(st.notices) < 100 {
			st.notices = append(st.notices, *n)
		}
		st.mu.Unlock()
	}
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

func (st *stream) takeNotices() []Notice {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := st.notices
	st.notices = nil
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
	stop, err := s.cfg.Subscribe(x.customer, func(e *events.Event) { st.poke(notice(e, x)) })
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no event feed: "+err.Error())
		return
	}
	defer stop()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	seq := 0
	send := func(typ string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			return false
		}
		seq++
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", seq, typ, data); err != nil {
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
	// A reconnecting browser retries after a second.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil || !sendBoard() {
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
			for _, n := range st.takeNotices() {
				if !send("notice", n) {
					return
				}
			}
			if !sendBoard() {
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
