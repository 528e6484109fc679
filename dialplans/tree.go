package dialplans

import (
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// file is one dialplan file as read from disk.
type file struct {
	data   []byte
	hash   [sha256.Size]byte
	mtime  time.Time
	size   int64
	readAt time.Time
	err    error // read failed: the file exists but its content is unknown
}

// isDialplan reports whether a directory entry name is a dialplan file.
// Dot files are skipped so editors' temporary files are never loaded.
func isDialplan(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// walk calls fn for every dialplan file under dir, skipping dot
// directories. An error reading a directory below dir is reported to fn
// with a nil DirEntry; an error on dir itself is returned.
func walk(dir string, fn func(path string, d fs.DirEntry, err error)) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return err
			}
			fn(path, nil, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			if isDialplan(d.Name()) {
				fn(path, d, nil)
			}
		}
		return nil
	})
}

// readTree reads every dialplan file under dir.
func readTree(dir string) (map[string]*file, error) {
	files := map[string]*file{}
	err := walk(dir, func(path string, _ fs.DirEntry, err error) {
		if err != nil {
			files[path] = &file{err: err}
			return
		}
		files[path] = readFile(path)
	})
	return files, err
}

func readFile(path string) *file {
	f := &file{readAt: time.Now()}
	st, err := os.Stat(path)
	if err != nil {
		f.err = err
		return f
	}
	if st.IsDir() {
		f.err = &fs.PathError{Op: "read", Path: path, Err: fs.ErrInvalid}
		return f
	}
	f.mtime, f.size = st.ModTime(), st.Size()
	if f.data, f.err = os.ReadFile(path); f.err == nil {
		f.hash = sha256.Sum256(f.data)
	}
	return f
}
