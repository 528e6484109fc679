package registrar

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestBindingExpiresOnTime runs the registrar on synctest's fake clock: a
// binding lapses exactly when its Expires says, a refresh moves the
// deadline, and each change reaches OnChange; no real waiting.
func TestBindingExpiresOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []int // contacts per OnChange
		r := New(func() Directory { return testAccounts }, Options{Log: testLogger(), OnChange: func(_, _ string, c []Binding) {
			mu.Lock()
			changes = append(changes, len(c))
			mu.Unlock()
		}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		register := func(expires string) {
			t.Helper()
			req := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10>"), sip.NewHeader("Expires", expires))
			nonce := challengeFor(t, r, req)
			tx := &fakeTx{}
			r.HandleRegister(withAuth(req, "Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", req.Recipient.Addr(), nonce, 1, "x")), tx)
			if res := tx.last(); res == nil || res.StatusCode != sip.StatusOK {
				t.Fatalf("register (Expires %s): %v", expires, res)
			}
		}
		count := func() int {
			synctest.Wait()
			return r.Count()
		}
		register("120")
		time.Sleep(90 * time.Second)
		register("120") // refreshed at 90 s: now due at 210 s
		time.Sleep(120*time.Second - time.Nanosecond)
		if n := count(); n != 1 {
			t.Fatalf("%d bindings just before the refreshed expiry, want 1", n)
		}
		time.Sleep(time.Nanosecond)
		if n := count(); n != 0 {
			t.Fatalf("%d bindings at the expiry, want 0", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != 3 || changes[2] != 0 {
			t.Fatalf("OnChange saw %v, want a binding, its refresh, then none", changes)
		}
	})
}
