package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// stubControl answers as a control plane with nothing parked.
type stubControl struct{}

func (stubControl) ParkCall(context.Context, string, string, string, control.Spot) (*state.Parked, error) {
	return nil, control.ErrNotFound
}
func (stubControl) RetrieveTo(context.Context, string, control.Spot, control.Dest) (*control.Retrieval, error) {
	return nil, control.ErrNotParked
}
func (stubControl) HangupParked(context.Context, string, control.Spot) (*state.Parked, error) {
	return nil, control.ErrNotParked
}
func (stubControl) MoveParked(context.Context, string, control.Spot, control.Spot) (*state.Parked, error) {
	return nil, control.ErrNotParked
}
func (stubControl) Slots(string) ([]control.SlotState, error)    { return nil, nil }
func (stubControl) Parked(string) ([]*state.Parked, error)       { return nil, nil }
func (stubControl) Calls(string, string) ([]control.Call, error) { return nil, nil }

func newTestServer(t testing.TB, now func() time.Time) *Server {
	t.Helper()
	set, err := dialplans.Load("../../dialplans/sample")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{
		Control:   stubControl{},
		Dialplans: func() *dialplans.Set { return set },
		Follow:    func(string, uint64, func(uint64, *events.Event)) (func(), uint64, error) { return func() {}, 0, nil },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:       now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(s *Server, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.7:40000"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestSessionLifecycle: sign in, act with the CSRF token, expire when
// idle, sign out.
func TestSessionLifecycle(t *testing.T) {
	now := time.Now()
	s := newTestServer(t, func() time.Time { return now })
	w := do(s, "POST", "/login", `{"customer":"demo.callpark.test","user":"200","password":"secret200"}`, nil)
	if w.Code != 200 {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	cookie := w.Result().Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", cookie)
	}
	x := s.sessions.get(cookie.Value)
	auth := map[string]string{"Cookie": cookieName + "=" + cookie.Value}
	if w := do(s, "GET", "/api/board", "", auth); w.Code != 200 || !strings.Contains(w.Body.String(), `"account":"200"`) {
		t.Fatalf("board: %d %s", w.Code, w.Body)
	}
	// No token, a wrong one, another site: refused before any action.
	for _, h := range []map[string]string{
		{},
		{"X-Callpark-CSRF": "nope"},
		{"X-Callpark-CSRF": x.csrf, "Origin": "http://evil.example"},
	} {
		h["Cookie"] = auth["Cookie"]
		if w := do(s, "POST", "/api/hangup", `{"slot":"1"}`, h); w.Code != 403 {
			t.Errorf("hangup with %v: %d", h, w.Code)
		}
	}
	ok := map[string]string{"Cookie": auth["Cookie"], "X-Callpark-CSRF": x.csrf, "Origin": "http://example.com"}
	if w := do(s, "POST", "/api/hangup", `{"slot":"1"}`, ok); w.Code != 404 || !strings.Contains(w.Body.String(), "not_parked") {
		t.Errorf("hangup: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{`{"slot":"1","extension":"2"}`, `{"slot":"1x"}`, `{"slott":"1"}`, `nope`, `{}`} {
		if w := do(s, "POST", "/api/hangup", bad, ok); w.Code != 400 {
			t.Errorf("hangup %s: %d", bad, w.Code)
		}
	}
	now = now.Add(9 * time.Hour)
	if w := do(s, "GET", "/api/board", "", auth); w.Code != 401 {
		t.Fatalf("idle session: %d", w.Code)
	}
	if s.sessions.count() != 0 {
		t.Fatal("expired session kept")
	}
}

// TestSignInRefusals: wrong passwords, unknown users, a customer without
// the API and a bare token of another customer all get the same 401; the
// address is then banned.
func TestSignInRefusals(t *testing.T) {
	s := newTestServer(t, time.Now)
	for _, body := range []string{
		`{"customer":"demo","user":"200","password":"wrong"}`,
		`{"customer":"demo","user":"7777","password":"secret200"}`,
		`{"customer":"acme","user":"200","password":"acme-secret200"}`,
		`{"customer":"demo","password":"acme-api-token-9876543210"}`,
		`{"customer":"nobody","user":"200","password":"x"}`,
	} {
		if w := do(s, "POST", "/login", body, nil); w.Code != 401 || !strings.Contains(w.Body.String(), "wrong_credentials") {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	var w *httptest.ResponseRecorder
	for range 10 {
		w = do(s, "POST", "/login", `{"customer":"demo","user":"200","password":"guess"}`, nil)
	}
	if w.Code != 429 {
		t.Fatalf("after guessing: %d", w.Code)
	}
	if w := do(s, "POST", "/login", `{"customer":"demo","user":"200","password":"secret200"}`, nil); w.Code != 429 {
		t.Fatalf("banned address, right password: %d", w.Code)
	}
}

// FuzzActions: no body makes an action panic or fail with a 500.
func FuzzActions(f *testing.F) {
	for _, b := range []string{`{"slot":"1"}`, `{"random":"any","call_id":"x"}`, `{"extension":"201","to":"200"}`, `{"to":"sip:x"}`, `[]`, `{"slot":"٣"}`} {
		f.Add(b)
	}
	s := newTestServer(f, time.Now)
	x := s.sessions.create("demo", "200", "Reception", true)
	hdr := map[string]string{"Cookie": cookieName + "=" + x.id, "X-Callpark-CSRF": x.csrf}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/api/park", "/api/retrieve", "/api/hangup", "/api/move", "/login"} {
			if w := do(s, "POST", path, body, hdr); w.Code >= 500 {
				t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body)
			}
		}
	})
}
