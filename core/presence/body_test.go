package presence

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestBodyGolden checks the exact documents phones get (testdata/*.xml;
// go test -update rewrites them).
func TestBodyGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		st    State
		known bool
	}{
		{"busy.xml", State{Busy: true, Display: "Alice", User: "+15551230001"}, true},
		{"busy-anonymous.xml", State{Busy: true}, true},
		{"busy-escaped.xml", State{Busy: true, Display: `"Bob" <&> 'x'`, User: "a&b<c>"}, true},
		{"free.xml", State{}, true},
		{"unknown.xml", State{}, false},
	} {
		got := Body("711", "demo.callpark.test", 4, tc.st, tc.known)
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", tc.file, got, want)
		}
	}
}

// TestBodyEscaped: whatever the strings, the document parses and gives
// them back.
func TestBodyEscaped(t *testing.T) {
	for _, s := range []string{`"Bob" <&> 'x'`, "tab\there", "ctl\x01char", "ünïcødé", "]]>"} {
		body := Body("7"+s, "d", 0, State{Busy: true, Display: s, User: "u"}, true)
		di, err := ParseDocument(body)
		if err != nil {
			t.Fatalf("%q: %v\n%s", s, err, body)
		}
		if len(di.Dialogs) != 1 || di.Dialogs[0].State != "confirmed" {
			t.Fatalf("%q: %+v", s, di)
		}
	}
}
