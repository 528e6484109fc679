package dialplans

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong in a dialplan file.
type Problem struct {
	File string
	Line int // 1-based; 0 when the problem is about the file as a whole
	Msg  string
}

// String formats p as "file:line: msg" (or "file: msg" when Line is 0), the
// form editors and CI logs turn into links.
func (p Problem) String() string {
	if p.Line <= 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Error lists every problem found by a Parse, Load or Reload.
type Error struct {
	Problems []Problem
}

// Error returns one problem per line, sorted by file then line.
func (e *Error) Error() string {
	ps := slices.Clone(e.Problems)
	sortProblems(ps)
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// errorOf returns ps as an *Error, or nil when there are none. It must be
// returned as error only when non-nil, hence the explicit interface result.
func errorOf(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	ps = slices.Clone(ps)
	sortProblems(ps)
	return &Error{Problems: ps}
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}
