package events

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestConnectedFollowsTheServer: Connected (read without the
// connection's lock) goes down when the server goes and up again when a
// server is back on its address.
func TestConnectedFollowsTheServer(t *testing.T) {
	s, err := RunServer(ServerConfig{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	bus, err := Connect(s.ClientURL(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if !bus.Connected() {
		t.Fatal("a new connection is not reported connected")
	}
	s.Shutdown()
	waitFor(t, "disconnected", func() bool { return !bus.Connected() })
	s2, err := RunServer(ServerConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown()
	waitFor(t, "reconnected", bus.Connected)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
