package dialplans

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callpark/callpark/internal/tick"
)

// Store holds the dialplan in force and swaps in new versions as files
// change, like caddy's config reload: readers call Current and never see a
// half-applied change.
//
// Reloads work file by file. A changed file that does not parse is refused
// and its previous good version stays in force; other valid changes are
// applied. A change that breaks a check spanning files (a customer naming a
// deleted rule, two customers with one domain) is refused as well, keeping
// the previous versions of the files involved.
type Store struct {
	dir string
	log *slog.Logger
	cur atomic.Pointer[Set]

	mu       sync.Mutex          // serializes reloads; guards the fields below
	docs     map[string]*version // the file versions in force, by path
	seen     map[string]*file    // the tree as last read, for Watch
	onChange []func(*Set)
}

// version is the parsed content of a file in force.
type version struct {
	hash [sha256.Size]byte
	doc  *Doc
}

// racyWindow: a file modified this close to when it was read may change
// again without its mtime moving on coarse file systems, so Watch hashes it
// instead of trusting mtime and size.
const racyWindow = 2 * time.Second

// NewStore loads dir. It fails on any problem: a daemon must not start on a
// dialplan it cannot fully read. log may be nil.
func NewStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	files, err := readTree(dir)
	if err != nil {
		return nil, errorOf([]Problem{{File: dir, Msg: err.Error()}})
	}
	docs, probs := parseFiles(files)
	set, more := build(docs)
	if probs = append(probs, more...); len(probs) > 0 {
		return nil, errorOf(probs)
	}
	s := &Store{dir: dir, log: log, docs: map[string]*version{}, seen: files}
	for path, doc := range docs {
		s.docs[path] = &version{hash: files[path].hash, doc: doc}
	}
	s.cur.Store(set)
	log.Info("dialplans loaded", "dir", dir, "files", len(docs), "customers", len(set.sorted))
	return s, nil
}

// Current returns the dialplan in force. It never returns nil.
func (s *Store) Current() *Set {
	return s.cur.Load()
}

// OnChange registers fn to be called with the new Set after each
// successful swap. Callbacks run in order on the reloading goroutine and
// must not call Reload.
func (s *Store) OnChange(fn func(*Set)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = append(s.onChange, fn)
}

// Reload re-reads the tree and applies every valid change. It returns an
// *Error listing what was refused, or nil when everything was applied.
// Each refused problem is also logged at Error level.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()

	files, err := readTree(s.dir)
	if err != nil {
		p := Problem{File: s.dir, Msg: err.Error()}
		s.log.Error("dialplans not reloaded", "problem", p.String())
		return errorOf([]Problem{p})
	}
	s.seen = files

	var refused []Problem
	changes := map[string]*version{} // nil: file deleted
	for path, f := range files {
		if f.err != nil {
			refused = append(refused, Problem{File: path, Msg: f.err.Error()})
			continue
		}
		if old := s.docs[path]; old != nil && old.hash == f.hash {
			continue
		}
		doc, err := Parse(path, f.data)
		if err != nil {
			refused = append(refused, err.(*Error).Problems...)
			continue
		}
		changes[path] = &version{hash: f.hash, doc: doc}
	}
	for path := range s.docs {
		if _, ok := files[path]; !ok {
			changes[path] = nil
		}
	}

	docs, set, applied, crossProbs := s.apply(changes)
	refused = append(refused, crossProbs...)
	sortProblems(refused)
	for _, p := range refused {
		s.log.Error("dialplan change refused", "problem", p.String())
	}
	if len(applied) > 0 {
		s.docs = docs
		s.cur.Store(set)
		s.log.Info("dialplans reloaded", "changed", applied, "refused", len(refused), "customers", len(set.sorted))
		for _, fn := range s.onChange {
			fn(set)
		}
	}
	return errorOf(refused)
}

// apply finds the largest set of changes that still builds: all of them
// if possible, else one at a time until no more can be added (so a new rule
// and a new customer using it go in together in either order). It returns
// the versions and Set to put in force, the paths applied, and the problems
// of the changes left out.
func (s *Store) apply(changes map[string]*version) (map[string]*version, *Set, []string, []Problem) {
	if len(changes) == 0 {
		return s.docs, nil, nil, nil
	}
	with := func(base map[string]*version, paths ...string) (map[string]*version, *Set, []Problem) {
		next := maps.Clone(base)
		for _, p := range paths {
			if v := changes[p]; v != nil {
				next[p] = v
			} else {
				delete(next, p)
			}
		}
		docs := make(map[string]*Doc, len(next))
		for p, v := range next {
			docs[p] = v.doc
		}
		set, probs := build(docs)
		return next, set, probs
	}

	pending := slices.Sorted(maps.Keys(changes))
	if next, set, probs := with(s.docs, pending...); len(probs) == 0 {
		return next, set, pending, nil
	}
	var (
		docs    = s.docs
		set     *Set
		applied []string
	)
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(pending); i++ {
			next, nset, probs := with(docs, pending[i])
			if len(probs) > 0 {
				continue
			}
			docs, set = next, nset
			applied = append(applied, pending[i])
			pending = slices.Delete(pending, i, i+1)
			i--
			progress = true
		}
	}
	_, _, probs := with(docs, pending...)
	slices.Sort(applied)
	return docs, set, applied, probs
}

// Watch polls the tree every interval until ctx ends and reloads when a
// file was added, removed or changed (by mtime and size, confirmed by a
// content hash). Problems are logged by Reload.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	tick.Every(ctx, interval, func() {
		if s.changed() {
			_ = s.Reload() // logged there
		}
	})
}

// changed reports whether the tree differs from what the last read saw.
func (s *Store) changed() bool {
	s.mu.Lock()
	seen := s.seen // replaced, never modified, by Reload
	s.mu.Unlock()

	changed, count := false, 0
	err := walk(s.dir, func(path string, _ fs.DirEntry, err error) {
		count++
		old := seen[path]
		switch {
		case changed:
		case old == nil:
			changed = true
		case err != nil:
			changed = old.err == nil
		default:
			changed = fileChanged(path, old)
		}
	})
	if err != nil {
		// The directory itself is unreadable; Reload would only refuse.
		return false
	}
	return changed || count != len(seen)
}

func fileChanged(path string, old *file) bool {
	st, err := os.Stat(path)
	if err != nil || old.err != nil {
		return (err == nil) != (old.err == nil)
	}
	if st.Size() != old.size {
		return true
	}
	if st.ModTime().Equal(old.mtime) && old.mtime.Before(old.readAt.Add(-racyWindow)) {
		return false
	}
	// Touched, or written too close to the last read to trust mtime: the
	// content decides, so an unchanged file does not cause a reload.
	data, err := os.ReadFile(path)
	return err != nil || sha256.Sum256(data) != old.hash
}
