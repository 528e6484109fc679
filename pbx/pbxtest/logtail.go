package pbxtest

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// logTailLines is how much of a PBX's log a failing test shows.
const logTailLines = 300

// logTail keeps the last lines a PBX logged, so that a test that fails
// shows what the PBX said before it (the log is otherwise discarded: a
// passing test's log is noise).
type logTail struct {
	mu    sync.Mutex
	lines []string // a ring of logTailLines
	next  int
	full  bool
}

// Write takes one record (slog writes each record whole).
func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines = make([]string, logTailLines)
	}
	l.lines[l.next] = strings.TrimRight(string(p), "\n")
	l.next = (l.next + 1) % len(l.lines)
	l.full = l.full || l.next == 0
	return len(p), nil
}

// String is the kept lines, oldest first.
func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var kept []string
	if l.full {
		kept = append(kept, l.lines[l.next:]...)
	}
	kept = append(kept, l.lines[:l.next]...)
	return strings.Join(kept, "\n")
}

// testLogger is a PBX's logger in a test: everything at debug level to
// stderr with CALLPARK_TEST_LOG set, else the last lines at info level,
// shown if the test fails.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CALLPARK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tail := &logTail{}
	t.Cleanup(func() {
		if t.Failed() {
			if s := tail.String(); s != "" {
				t.Logf("the PBX's last log lines:\n%s", s)
			}
		}
	})
	return slog.New(slog.NewTextHandler(tail, nil))
}
