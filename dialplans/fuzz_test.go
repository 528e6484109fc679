package dialplans

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes, seeded with the golden inputs and
// the sample dialplans. Parse must never panic and must return either a
// document or an *Error with at least one problem in the named file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.dialplantest")
	more, _ := filepath.Glob("sample/*/*.yaml")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if in, _, ok := bytes.Cut(data, []byte("\n"+separator)); ok {
			data = in
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse("f.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 || doc != nil {
				t.Fatalf("Parse: doc %v, err %#v", doc, err)
			}
			for _, p := range e.Problems {
				if p.File != "f.yaml" || p.Line < 0 || p.Msg == "" {
					t.Fatalf("bad problem %#v", p)
				}
			}
			return
		}
		if doc == nil || (doc.Rule == nil) == (doc.Customer == nil) {
			t.Fatalf("Parse: doc %+v", doc)
		}
		if c := doc.Customer; c != nil {
			for _, d := range []string{"*70", "*71", "711", "200", string(data[:min(len(data), 12)])} {
				_ = c.Route(d)
			}
			m := map[string]*Doc{"f.yaml": doc, "r.yaml": {Kind: KindRule, Rule: &Rule{Name: c.RuleName, Park: "*70", Release: "*71", SlotRelease: "71"}}}
			_, _ = build(m)
		}
	})
}
