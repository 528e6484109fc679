package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"
)

// session is one signed-in browser.
type session struct {
	id       string
	csrf     string
	customer string
	// account is the signed-in extension; "" for an API-token session,
	// which sees the board and acts for the customer but has no phone.
	account string
	name    string
	// control is whether the session may act (the account holds
	// call_control, or the API token was given).
	control bool
	expires time.Time
}

// sessions holds the live sessions, by id. Idle sessions expire.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	idle time.Duration
	now  func() time.Time
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, idle: idle, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// create starts a session.
func (s *sessions) create(customer, account, name string, control bool) *session {
	x := &session{id: randomToken(), csrf: randomToken(), customer: customer, account: account, name: name, control: control}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, old := range s.byID { // sweep on sign-in: sessions are few
		if now.After(old.expires) {
			delete(s.byID, id)
		}
	}
	x.expires = now.Add(s.idle)
	s.byID[x.id] = x
	return x
}

// get returns the live session id and extends it; nil if none.
func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byID[id]
	if x == nil {
		return nil
	}
	now := s.now()
	if now.After(x.expires) {
		delete(s.byID, id)
		return nil
	}
	x.expires = now.Add(s.idle)
	cp := *x
	return &cp
}

// drop ends session id.
func (s *sessions) drop(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// count is the number of live sessions.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// validCSRF compares in constant time.
func (x *session) validCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(x.csrf)) == 1
}
