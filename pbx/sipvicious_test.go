package pbx_test

// sipvicious (svmap, svwar, svcrack) is what scans every SIP port on the
// internet within minutes of it going online. Run against a real callpark:
// it finds a SIP device and nothing more — no extension, no password —
// and the address it attacks from is banned while other hosts are served.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/pbx/pbxtest"
)

// sipvicious runs one of its tools (from the attacker's default address,
// 127.0.0.1: sipvicious sends from there whatever its -b says) and returns
// what it printed.
func sipvicious(t *testing.T, tool string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CALLPARK_REQUIRE_SIPP") == "1" {
			t.Fatalf("%s is required (make deps installs sipvicious): %v", tool, err)
		}
		t.Skipf("%s not installed (apt-get install -y sipvicious)", tool)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir) // it keeps sessions in ~/.sipvicious
	out, _ := cmd.CombinedOutput()
	t.Logf("%s %s:\n%s", tool, strings.Join(args, " "), out)
	return string(out)
}

// TestSipviciousFindsNothing: svmap sees a SIP device; svwar cannot tell
// a real extension from an unknown one; svcrack is banned after ten
// guesses, long before it reaches the right password (the 60th word); the
// service keeps serving other hosts, with tones both ways.
func TestSipviciousFindsNothing(t *testing.T) {
	p := pbxtest.Start(t)
	_, port, _ := strings.Cut(p.Addr, ":")
	local := func() string { return strconv.Itoa(pbxtest.FreePort(t)) }

	if out := sipvicious(t, "svmap", "-P", local(), "-p", port, "127.0.0.1"); !strings.Contains(out, p.Addr) {
		t.Errorf("svmap did not even find the service")
	}
	for _, method := range []string{"REGISTER", "INVITE", "OPTIONS"} {
		out := sipvicious(t, "svwar", "-P", local(), "--domain", sippDomain, "-m", method, "-e", "195-205,333", "-p", port, "127.0.0.1")
		for _, ext := range []string{"200", "201", "202", "333"} {
			if strings.Contains(out, "| "+ext+" ") {
				t.Errorf("svwar -m %s enumerated extension %s", method, ext)
			}
		}
	}

	words := filepath.Join(t.TempDir(), "words.txt")
	var list strings.Builder
	for i := 1; i <= 100; i++ {
		w := fmt.Sprintf("guess%03d", i)
		if i == 60 {
			w = p.Store().Current().Customer("demo").Account("200").Password
		}
		list.WriteString(w + "\n")
	}
	if err := os.WriteFile(words, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := sipvicious(t, "svcrack", "-P", local(), "--domain", sippDomain, "-u", "200", "-d", words, "-p", port, "127.0.0.1")
	if strings.Contains(out, "secret200") || !strings.Contains(out, "found nothing") {
		t.Errorf("svcrack found the password")
	}
	if tried := p.Counter("callpark_auth_failures_total", map[string]string{"reason": "bad_password"}); tried >= 50 {
		t.Errorf("svcrack tried %v passwords, want it banned well before 50", tried)
	}
	if n := p.Counter("callpark_bans_total", map[string]string{"kind": "address"}); n < 1 {
		t.Errorf("no address banned")
	}
	// Banned: 127.0.0.1 gets no answer at all now.
	if got := pbxtest.SendHostile(p.Addr, "udp", []pbxtest.Hostile{pbxtest.ForgeInDialog("OPTIONS", sippDomain, "after-ban", "a", "")}, time.Second)[0]; got != "" {
		t.Errorf("the banned address still gets answers: %q", got)
	}
	// Another host is served as ever.
	a := p.PhoneOn(t, "127.0.0.9", "demo", "200")
	b := p.PhoneOn(t, "127.0.0.9", "demo", "201")
	ca, cb := connect(t, a, b)
	talk(t, ca, cb)
}
