package dialplans

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.dialplantest")

// A .dialplantest file, like caddy's .caddyfiletest, is input, a line
// "----", then the expected output: the problems, one "file:line: msg" a
// line, or a normalized dump of what was parsed.
//
// The input is one YAML file, checked with Parse under the test file's own
// path (so the lines in the expected problems are lines of the test file),
// or several files each introduced by a line "-- path --", loaded together
// with Load.
const separator = "----\n"

func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.dialplantest")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".dialplantest"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := bytes.Cut(data, []byte("\n"+separator))
			if !ok {
				t.Fatalf("%s: no %q line", path, strings.TrimSpace(separator))
			}
			input = append(input, '\n')
			got := runGolden(t, path, input)
			if *update {
				out := append(append(input, separator...), got...)
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(want) {
				t.Errorf("%s: got:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

func runGolden(t *testing.T, path string, input []byte) string {
	files := splitFiles(input)
	if files == nil {
		doc, err := Parse(path, input)
		if err != nil {
			return err.Error() + "\n"
		}
		return dumpDoc(doc)
	}
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Load(dir)
	if err != nil {
		return strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "") + "\n"
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(set.rules)) {
		b.WriteString(dumpRule(set.rules[name]))
	}
	for _, c := range set.Customers() {
		b.WriteString(dumpCustomer(c))
	}
	return strings.ReplaceAll(b.String(), dir+string(filepath.Separator), "")
}

// splitFiles splits a txtar-like input into files; nil if it is one file.
func splitFiles(input []byte) map[string][]byte {
	if !bytes.HasPrefix(input, []byte("-- ")) {
		return nil
	}
	files := map[string][]byte{}
	var name string
	for _, line := range strings.SplitAfter(string(input), "\n") {
		if n, ok := strings.CutPrefix(line, "-- "); ok && strings.HasSuffix(n, " --\n") {
			name = strings.TrimSuffix(n, " --\n")
			files[name] = nil
			continue
		}
		files[name] = append(files[name], line...)
	}
	return files
}

func dumpDoc(d *Doc) string {
	if d.Rule != nil {
		return dumpRule(d.Rule)
	}
	return dumpCustomer(d.Customer)
}

func dumpRule(r *Rule) string {
	return fmt.Sprintf("rule %s (%s:%d) type=%s park=%q release=%q slot_release=%q random_digits=%d park_any_number=%t\n",
		r.Name, r.File, r.Line, r.Type, r.Park, r.Release, r.SlotRelease, r.RandomDigits, r.ParkAnyNumber)
}

func dumpCustomer(c *Customer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "customer %s (%s:%d) domain=%s rule=%s\n", c.Name, c.File, c.Line, c.Domain, c.RuleName)
	f := c.Features
	fmt.Fprintf(&b, "  features parking=%t api=%t dial_timeout=%v music=%q", f.Parking, f.API, f.DialTimeout, f.Music)
	if f.OutsidePrefix != "" {
		fmt.Fprintf(&b, " outside_prefix=%q", f.OutsidePrefix)
	}
	if f.SRTP != SRTPOptional {
		fmt.Fprintf(&b, " srtp=%s", f.SRTP)
	}
	if f.Digest != DigestMD5|DigestSHA256 {
		fmt.Fprintf(&b, " digest=%v", f.Digest.Algorithms())
	}
	b.WriteString("\n")
	ar := f.AutoRetrieve
	fmt.Fprintf(&b, "  auto_retrieve enabled=%t after=%v ring=%s alert_info=%q attempts=%d\n", ar.Enabled, ar.After, ar.Ring, ar.AlertInfo, ar.Attempts)
	for _, ext := range slices.Sorted(maps.Keys(c.Accounts)) {
		a := c.Accounts[ext]
		fmt.Fprintf(&b, "  account %s (line %d) name=%q password=%q permissions=%v answering_mode=%s forward_to=%q\n",
			a.Extension, a.Line, a.Name, a.Password, a.Permissions, a.AnsweringMode, a.ForwardTo)
		if a.SRTP != "" {
			fmt.Fprintf(&b, "    srtp=%s (required: %t)\n", a.SRTP, c.SRTPRequired(a))
		}
	}
	for _, num := range slices.Sorted(maps.Keys(c.DIDs)) {
		fmt.Fprintf(&b, "  did %s -> %s\n", num, c.DIDs[num])
	}
	for _, tr := range c.Trunks {
		fmt.Fprintf(&b, "  trunk %s address=%s prefix=%v port=%d", tr.Name, tr.Address, tr.prefix, tr.port)
		if tr.out.IsValid() || tr.Username != "" || tr.CallerID != "" || tr.Register {
			target, _ := tr.Target()
			fmt.Fprintf(&b, " outbound=%v username=%q caller_id=%q register=%t register_expiry=%v",
				target, tr.Username, tr.CallerID, tr.Register, tr.RegisterExpiry)
		}
		b.WriteString("\n")
	}
	for _, n := range slices.Sorted(maps.Keys(c.Slots)) {
		s := c.Slots[n]
		fmt.Fprintf(&b, "  slot %s (line %d) label=%q timeout=%v\n", s.Number, s.Line, s.Label, s.Timeout)
	}
	return b.String()
}
