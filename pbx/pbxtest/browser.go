package pbxtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Browser is a real headless Chromium (the system's; nothing is
// downloaded), driven over the DevTools protocol. Each Session is a
// separate browser context: its own cookies, like another person's
// computer.
type Browser struct {
	ctx context.Context
}

// chromium finds the system Chromium, or skips the test; with
// CALLPARK_REQUIRE_BROWSER=1 (set by `make test`) a missing browser fails.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CALLPARK_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is required (make deps installs it)")
	}
	t.Skip("no chromium; make deps installs it")
	return ""
}

// NewBrowser starts Chromium for the test; it is closed when the test ends.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.WindowSize(1360, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// The first context starts the browser; sessions are contexts of it.
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// (Its context, not a shorter one, must start it: the browser lives
	// as long as the context of its first run.)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return &Browser{ctx: bctx}
}

// Session is one browser context with one tab.
type Session struct {
	t    testing.TB
	ctx  context.Context
	base string
}

// Session opens a new browser context on base (the site's URL).
func (b *Browser) Session(t testing.TB, base string) *Session {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The tab lives as long as the context of its first run: this one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: new session: %v", err)
	}
	s := &Session{t: t, ctx: ctx, base: strings.TrimSuffix(base, "/")}
	s.Do(chromedp.Navigate(s.base + "/"))
	return s
}

// Context is the session's chromedp context, for actions of one's own.
func (s *Session) Context() context.Context { return s.ctx }

// Do runs actions, within 15 s, failing the test on error.
func (s *Session) Do(actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		s.t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates a JavaScript expression (promises are awaited) and
// returns its JSON value decoded into T.
func Eval[T any](s *Session, expr string) T {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		s.t.Fatalf("browser: eval %s: %v", expr, err)
	}
	return v
}

// WaitText waits until the text of the first element matching sel
// contains want, and returns the text.
func (s *Session) WaitText(sel, want string, within time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		last = Eval[string](s, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
		if strings.Contains(last, want) {
			return last
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("browser: %s has %q, not %q, after %s", sel, last, want, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Text is the text of the first element matching sel ("" if none).
func (s *Session) Text(sel string) string {
	s.t.Helper()
	return Eval[string](s, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// Screenshot writes a PNG of the page to path.
func (s *Session) Screenshot(path string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// Block makes the page's requests to URLs matching pattern (a URLPattern
// such as "*://*:*/api/events") fail as if the network dropped them, or,
// with no patterns, lets everything through again.
func (s *Session) Block(patterns ...string) {
	s.t.Helper()
	s.Do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		var ps []*network.BlockPattern
		for _, p := range patterns {
			ps = append(ps, &network.BlockPattern{URLPattern: p, Block: true})
		}
		_, err := cdp.Call(ctx, tg, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: ps})
		return err
	}))
}
