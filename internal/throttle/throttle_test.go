package throttle

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBurstThenQuietThenCount(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	log := slog.New(New(slog.NewTextHandler(&buf, nil), Options{Burst: 2, Interval: time.Second, Now: func() time.Time { return now }}))
	for range 100 {
		log.Error("failed to parse", "data", strings.Repeat("x", 40000), "error", errors.New(strings.Repeat("e", 1000)))
	}
	if n := strings.Count(buf.String(), "failed to parse"); n != 2 {
		t.Fatalf("%d lines in the first window, want 2", n)
	}
	if buf.Len() > 2*1000 {
		t.Fatalf("values not cut: %d bytes for 2 lines", buf.Len())
	}
	now = now.Add(time.Second)
	buf.Reset()
	log.Error("failed to parse", "data", "y")
	if !strings.Contains(buf.String(), "suppressed=98") {
		t.Fatalf("held-back count missing: %s", buf.String())
	}
	log.Info("other message")
	if !strings.Contains(buf.String(), "other message") {
		t.Fatal("another message was held back")
	}
}
