package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/core/ban"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

//go:embed assets
var assets embed.FS

// Controller is what the console needs of the control plane;
// *control.Control implements it.
type Controller interface {
	ParkCall(ctx context.Context, customer, account, callID string, at control.Spot) (*state.Parked, error)
	RetrieveTo(ctx context.Context, customer string, from control.Spot, to control.Dest) (*control.Retrieval, error)
	HangupParked(ctx context.Context, customer string, at control.Spot) (*state.Parked, error)
	MoveParked(ctx context.Context, customer string, from, to control.Spot) (*state.Parked, error)
	Slots(customer string) ([]control.SlotState, error)
	Parked(customer string) ([]*state.Parked, error)
	Calls(customer, account string) ([]control.Call, error)
}

// Config holds the console's dependencies.
type Config struct {
	Control   Controller
	Dialplans func() *dialplans.Set
	// Follow delivers customer's events stored after sequence after (0:
	// from now on) and then each new one, with its sequence, until stop is
	// called; from is the sequence it starts after (events.Bus.FollowEvents).
	// An event stream resumed with the last sequence it saw misses nothing.
	Follow func(customer string, after uint64, fn func(seq uint64, e *events.Event)) (stop func(), from uint64, err error)
	Log    *slog.Logger
	// Bans counts failed sign-ins per address; nil means a private list
	// with core/ban's defaults.
	Bans *ban.List
	// SessionIdle ends a session after this long unused; 0 means 8h.
	SessionIdle time.Duration
	// Coalesce is the longest a board update waits for more events; 0
	// means 100ms.
	Coalesce time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Elsewhere, in a cluster, says whether another node's console serves
	// customer now (the node whose control plane decides for it) and its
	// URL: sign-ins and requests for that customer are sent there (421
	// with the URL; the page follows it). Nil: everything is served here.
	Elsewhere func(customer string) (url string, ok bool)
}

// Server is the console's HTTP handler.
type Server struct {
	cfg      Config
	sessions *sessions
	mux      *http.ServeMux

	mu      sync.Mutex
	streams map[*stream]struct{}
	closed  bool
}

// New builds the console.
func New(cfg Config) (*Server, error) {
	if cfg.Control == nil || cfg.Dialplans == nil || cfg.Follow == nil || cfg.Log == nil {
		return nil, errors.New("console: Control, Dialplans, Follow and Log are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = 8 * time.Hour
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = 100 * time.Millisecond
	}
	if cfg.Bans == nil {
		cfg.Bans = ban.New(ban.Config{Log: cfg.Log, Now: cfg.Now})
	}
	s := &Server{cfg: cfg, sessions: newSessions(cfg.SessionIdle, cfg.Now), streams: map[*stream]struct{}{}}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.action(s.logout, false))
	mux.HandleFunc("GET /api/board", s.authed(s.getBoard))
	mux.HandleFunc("GET /api/events", s.authed(s.events))
	mux.HandleFunc("POST /api/park", s.action(handle(s, s.park), true))
	mux.HandleFunc("POST /api/retrieve", s.action(handle(s, s.retrieve), true))
	mux.HandleFunc("POST /api/hangup", s.action(handle(s, s.hangup), true))
	mux.HandleFunc("POST /api/move", s.action(handle(s, s.move), true))
	s.mux = mux
	return s, nil
}

// ServeHTTP serves the console, with the headers every answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.Log.Error("console handler panicked", "path", r.URL.Path, "panic", v)
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	s.mux.ServeHTTP(w, r)
}

// Close ends every event stream (lame duck, shutdown); browsers reconnect
// elsewhere or when the service is back.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for st := range s.streams {
		st.close()
	}
	s.mu.Unlock()
}

// DropStreams ends the open event streams and lets new ones in: what a
// restarted transport looks like to the browsers.
func (s *Server) DropStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.streams)
	for st := range s.streams {
		st.close()
	}
	return n
}

// Streams is the number of open event streams.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

const cookieName = "callpark_session"

// current returns the request's session, or nil.
func (s *Server) current(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	return s.sessions.get(c.Value)
}

// authed lets only signed-in requests through.
func (s *Server) authed(fn func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		x := s.current(r)
		if x == nil || s.customer(x) == nil {
			writeError(w, http.StatusUnauthorized, "signed_out", "sign in first")
			return
		}
		if s.moved(w, x.customer) {
			return
		}
		fn(w, r, x)
	}
}

// action is authed plus what a state change needs: the session's CSRF
// token, a same-origin request, and (needControl) the right to act.
func (s *Server) action(fn func(http.ResponseWriter, *http.Request, *session), needControl bool) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request, x *session) {
		if !sameOrigin(r) || !x.validCSRF(r.Header.Get("X-Callpark-CSRF")) {
			writeError(w, http.StatusForbidden, "csrf", "missing or wrong CSRF token")
			return
		}
		if needControl && !x.control {
			writeError(w, http.StatusForbidden, "forbidden", "this account may not control calls (needs call_control)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		fn(w, r, x)
	})
}

// sameOrigin refuses a request a browser says came from another site.
// Requests without Origin (curl, old browsers on GET) rely on the token.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *Server) customer(x *session) *dialplans.Customer {
	set := s.cfg.Dialplans()
	if set == nil {
		return nil
	}
	return set.Customer(x.customer)
}

// remoteAddr is the peer's address, for failure counting.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// login signs a browser in: customer (its name or SIP domain), then an
// extension and its SIP password, or no extension and the API token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	addr := remoteAddr(r)
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "csrf", "cross-site sign-in refused")
		return
	}
	if s.cfg.Bans.Banned(addr) {
		w.Header().Set("Retry-After", "300")
		writeError(w, http.StatusTooManyRequests, "banned", "too many failed sign-ins from this address; try again later")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	var req struct {
		Customer string `json:"customer"`
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "bad sign-in request")
		return
	}
	cust := s.lookupCustomer(strings.TrimSpace(req.Customer))
	user := strings.TrimSpace(req.User)
	var x *session
	switch {
	case cust == nil || req.Password == "":
	case !cust.Features.API:
		// The console is an API app; a customer without the API has none.
	case user == "":
		if cust.API.Token != "" && subtle.ConstantTimeCompare([]byte(req.Password), []byte(cust.API.Token)) == 1 {
			x = s.sessions.create(cust.Name, "", "API", true)
		}
	default:
		if s.cfg.Bans.Locked(cust.Name+"/"+user, addr) {
			break
		}
		a := cust.Account(user)
		if a != nil && subtle.ConstantTimeCompare([]byte(req.Password), []byte(a.Password)) == 1 {
			x = s.sessions.create(cust.Name, a.Extension, a.Name, a.Can(dialplans.PermCallControl))
		}
	}
	if x == nil {
		account := ""
		if cust != nil && user != "" {
			account = cust.Name + "/" + user
		}
		s.cfg.Bans.Fail(addr, account)
		s.cfg.Log.Info("console sign-in refused", "addr", addr, "customer", req.Customer, "user", user)
		writeError(w, http.StatusUnauthorized, "wrong_credentials", "wrong customer, extension or password")
		return
	}
	s.cfg.Bans.Succeed(addr, x.customer+"/"+x.account)
	if s.moved(w, x.customer) {
		s.sessions.drop(x.id)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: x.id, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	s.cfg.Log.Info("console sign-in", "addr", addr, "customer", x.customer, "account", x.account)
	writeJSON(w, map[string]any{"customer": x.customer, "account": x.account, "csrf": x.csrf})
}

// moved answers 421 with the URL of the console that serves customer, if
// that is another node's.
func (s *Server) moved(w http.ResponseWriter, customer string) bool {
	if s.cfg.Elsewhere == nil {
		return false
	}
	u, ok := s.cfg.Elsewhere(customer)
	if !ok {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusMisdirectedRequest)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "elsewhere",
		"message": "this customer is served by another node's console: " + u, "url": u}})
	return true
}

// lookupCustomer finds a customer by name or SIP domain.
func (s *Server) lookupCustomer(name string) *dialplans.Customer {
	set := s.cfg.Dialplans()
	if set == nil || name == "" {
		return nil
	}
	if c := set.Customer(name); c != nil {
		return c
	}
	for _, c := range set.Customers() {
		if strings.EqualFold(c.Domain, name) {
			return c
		}
	}
	return nil
}

func (s *Server) logout(w http.ResponseWriter, _ *http.Request, x *session) {
	s.sessions.drop(x.id)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, map[string]any{"ok": true})
}

// index serves the page; the script shows sign-in or the board.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("assets/index.html")
	if err != nil {
		http.Error(w, "missing page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
