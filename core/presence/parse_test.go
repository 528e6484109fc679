package presence

import (
	"strings"
	"testing"
)

func TestParseEvent(t *testing.T) {
	for in, want := range map[string][2]string{
		"dialog":             {"dialog", ""},
		" Dialog ;id=42":     {"dialog", "42"},
		"dialog;sla;id=a.b":  {"dialog", "a.b"},
		"presence":           {"presence", ""},
		"":                   {"", "err"},
		"dia log":            {"", "err"},
		"dialog;id=<script>": {"", "err"},
	} {
		pkg, id, err := ParseEvent(in)
		if want[1] == "err" {
			if err == nil {
				t.Errorf("ParseEvent(%q) accepted", in)
			}
			continue
		}
		if err != nil || pkg != want[0] || id != want[1] {
			t.Errorf("ParseEvent(%q) = %q %q %v", in, pkg, id, err)
		}
	}
}

func TestParseExpires(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, " 3600 ": 3600, "99999999999999999999": 1 << 40, "-1": -1, "1e3": -1, "": -1, "3600;x": -1} {
		got, err := ParseExpires(in)
		if (err != nil) != (want < 0) || (err == nil && got != want) {
			t.Errorf("ParseExpires(%q) = %d %v", in, got, err)
		}
	}
}

func TestAccepts(t *testing.T) {
	for in, want := range map[string]bool{
		"":                                    true,
		"application/dialog-info+xml":         true,
		"application/pidf+xml, */*":           true,
		"Application/Dialog-Info+XML;q=0.5":   true,
		"application/pidf+xml":                false,
		"application/xpidf+xml, text/plain":   false,
		"application/*":                       true,
		"application/rlmi+xml, multipart/mix": false,
	} {
		var vals []string
		if in != "" {
			vals = []string{in}
		}
		if got := Accepts(vals); got != want {
			t.Errorf("Accepts(%q) = %v", in, got)
		}
	}
}

// FuzzParse feeds the header parsers network input: they never panic,
// and what they accept is well formed.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"dialog", "dialog;id=7", "presence;x=y", "3600", "0", "application/dialog-info+xml, */*;q=0.1", ";;", "=", "dialog;id="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if pkg, id, err := ParseEvent(s); err == nil {
			if !isToken(pkg) || (id != "" && !isToken(id)) || pkg != strings.ToLower(pkg) {
				t.Fatalf("ParseEvent(%q) = %q %q", s, pkg, id)
			}
		}
		if n, err := ParseExpires(s); err == nil && n < 0 {
			t.Fatalf("ParseExpires(%q) = %d", s, n)
		}
		Accepts([]string{s})
		// Whatever the user part, the body stays well-formed XML.
		if _, err := ParseDocument(Body(s, "d", 1, State{Busy: true, Display: s, User: s}, true)); err != nil {
			t.Fatalf("Body(%q) is not XML: %v", s, err)
		}
	})
}
