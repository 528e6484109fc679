package registrar

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestSipp runs the sipp scenarios in testdata/sipp against a registrar on
// 127.0.0.1. It is skipped when sipp is not installed (apt-get install
// sip-tester).
func TestSipp(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Skip("sipp not installed")
	}
	pbx := startPBX(t, Options{})
	host, port, _ := net.SplitHostPort(pbx.addr)
	for _, tc := range []struct {
		scenario string
		bindings int
	}{
		{"register_wrong_password.xml", 0},
		{"register.xml", 1},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, sipp,
				"-sf", filepath.Join("testdata", "sipp", tc.scenario),
				"-key", "domain", testDomain,
				"-m", "1", "-i", host, "-p", strconv.Itoa(freeUDPPort(t)),
				"-timeout", "10s", "-timeout_error", "-nostdin",
				"-trace_err", "-error_file", filepath.Join(t.TempDir(), "errors.log"),
				host+":"+port)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("sipp: %v\n%s", err, out)
			}
			if n := len(pbx.r.Contacts("acme", "200")); n != tc.bindings {
				t.Fatalf("%d bindings after %s, want %d", n, tc.scenario, tc.bindings)
			}
		})
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
