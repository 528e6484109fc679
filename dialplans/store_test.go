package dialplans

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpark/callpark/internal/syncbuf"
)

const storeRule = `kind: rule
name: pbx-default
`

func storeCustomer(name, password string) string {
	return `kind: customer
name: ` + name + `
domain: ` + name + `.test
rule: pbx-default
accounts:
  - extension: "200"
    password: ` + password + `
`
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestStore(t *testing.T) (*Store, string, *syncbuf.Buffer) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "rules/default.yaml", storeRule)
	writeFile(t, dir, "customers/a.yaml", storeCustomer("a", "one"))
	writeFile(t, dir, "customers/b.yml", storeCustomer("b", "one"))
	logs := &syncbuf.Buffer{}
	s, err := NewStore(dir, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, logs
}

func password(s *Set, customer string) string {
	if a := s.Customer(customer).Account("200"); a != nil {
		return a.Password
	}
	return ""
}

func TestStoreReloadPerFile(t *testing.T) {
	s, dir, logs := newTestStore(t)
	var swaps atomic.Int32
	s.OnChange(func(*Set) { swaps.Add(1) })

	// Break a, change b: b applies, a keeps its old version.
	writeFile(t, dir, "customers/a.yaml", storeCustomer("a", "two")+"    pasword: oops\n")
	writeFile(t, dir, "customers/b.yml", storeCustomer("b", "two"))
	err := s.Reload()
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 {
		t.Fatalf("Reload = %v, want one problem", err)
	}
	wantProblem := filepath.Join(dir, "customers/a.yaml") + `:8: unknown key "pasword" in account`
	if !strings.HasPrefix(e.Problems[0].String(), wantProblem) {
		t.Errorf("problem = %q, want prefix %q", e.Problems[0], wantProblem)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "customers/a.yaml:8: unknown key") {
		t.Errorf("problem not logged:\n%s", logs)
	}
	if got := password(s.Current(), "a"); got != "one" {
		t.Errorf("a password = %q, want old version", got)
	}
	if got := password(s.Current(), "b"); got != "two" {
		t.Errorf("b password = %q, want new version", got)
	}
	if swaps.Load() != 1 {
		t.Errorf("OnChange calls = %d, want 1", swaps.Load())
	}

	// Fix a: applied.
	writeFile(t, dir, "customers/a.yaml", storeCustomer("a", "three"))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := password(s.Current(), "a"); got != "three" {
		t.Errorf("a password = %q after fix", got)
	}

	// Nothing changed: no swap.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if swaps.Load() != 2 {
		t.Errorf("OnChange calls = %d, want 2", swaps.Load())
	}

	// Delete b: removed.
	if err := os.Remove(filepath.Join(dir, "customers/b.yml")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Current().Customer("b") != nil || len(s.Current().Customers()) != 1 {
		t.Error("b still there after delete")
	}
}

func TestStoreCrossFileRefused(t *testing.T) {
	s, dir, _ := newTestStore(t)
	old := s.Current()

	// Deleting the rule would strand both customers: refused, nothing swaps.
	if err := os.Remove(filepath.Join(dir, "rules/default.yaml")); err != nil {
		t.Fatal(err)
	}
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), `a.yaml:4: unknown rule "pbx-default"`) {
		t.Fatalf("Reload = %v", err)
	}
	if s.Current() != old {
		t.Error("Set swapped although the change was refused")
	}

	// A new customer with a taken domain is refused while another valid
	// change goes in; a new rule and a customer using it go in together.
	writeFile(t, dir, "rules/default.yaml", storeRule)
	writeFile(t, dir, "customers/c.yaml", strings.Replace(storeCustomer("c", "x"), "c.test", "A.test", 1))
	writeFile(t, dir, "customers/b.yml", storeCustomer("b", "new"))
	writeFile(t, dir, "customers/d.yaml", strings.Replace(storeCustomer("d", "x"), "pbx-default", "zzz", 1))
	writeFile(t, dir, "rules/zzz.yaml", "kind: rule\nname: zzz\n")
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), `c.yaml:3: domain "a.test" is also used by customer "a"`) {
		t.Fatalf("Reload = %v", err)
	}
	cur := s.Current()
	if cur.Customer("c") != nil || password(cur, "b") != "new" || cur.Customer("d") == nil || cur.Customer("d").Rule.Name != "zzz" {
		t.Errorf("wrong set after partial reload: %v", cur.Customers())
	}
	if old.Customer("d") != nil || password(old, "b") != "one" {
		t.Error("old Set was modified")
	}
}

func TestNewStoreFails(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "x.yaml", "kind: rule\nname: r\nrandom_digits: 1\n")
	_, err := NewStore(dir, nil)
	if err == nil || !strings.HasSuffix(err.Error(), "x.yaml:3: random_digits: 1 is out of range 2..8") {
		t.Errorf("NewStore = %v", err)
	}
	if _, err := NewStore(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("NewStore of a missing dir succeeded")
	}
}

func TestStoreWatch(t *testing.T) {
	s, dir, logs := newTestStore(t)
	changed := make(chan *Set, 10)
	s.OnChange(func(set *Set) { changed <- set })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	// Same size, written right after the first read: only the hash tells.
	writeFile(t, dir, "customers/a.yaml", storeCustomer("a", "two"))
	select {
	case set := <-changed:
		if password(set, "a") != "two" || password(s.Current(), "a") != "two" {
			t.Errorf("watch applied the wrong version")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch missed a change")
	}

	// A broken file is logged once, not on every poll.
	writeFile(t, dir, "customers/a.yaml", "kind: customer\nname: [\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "invalid YAML") {
		if time.Now().After(deadline) {
			t.Fatal("broken file not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "invalid YAML"); n != 1 {
		t.Errorf("problem logged %d times, want 1:\n%s", n, logs)
	}
	if password(s.Current(), "a") != "two" {
		t.Error("broken file replaced the good version")
	}

	// A new file is picked up.
	writeFile(t, dir, "customers/new/e.yaml", storeCustomer("e", "x"))
	select {
	case set := <-changed:
		if set.Customer("e") == nil {
			t.Error("new customer missing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch missed a new file")
	}
}

func TestStoreConcurrentReaders(t *testing.T) {
	s, dir, _ := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				set := s.Current()
				if c, a := set.Account("a.test", "200"); c == nil || a == nil {
					t.Error("account a/200 missing")
					return
				}
				_ = set.Customer("a").Route("*70200")
			}
		}()
	}
	for i := range 20 {
		writeFile(t, dir, "customers/a.yaml", storeCustomer("a", strings.Repeat("p", i+1)))
		if err := s.Reload(); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
}
