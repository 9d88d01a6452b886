package fetch

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"syscall"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// openFile opens the local file at path: relative paths are taken from the
// root; the file, with its symbolic links resolved, must be a regular file at
// or below the root. It returns the file and a content type guessed from its
// extension.
func (h *Handler) openFile(path string) (io.ReadCloser, string, error) {
	if h.root == "" {
		return nil, "", runner.Permanent(errors.New("local files are not allowed (no root folder configured)"))
	}
	p := path
	if !filepath.IsAbs(p) {
		p = filepath.Join(h.root, p)
	}
	p = filepath.Clean(p)
	// Refuse what is lexically outside before touching the file system, so
	// errors tell nothing about files outside the root.
	if _, ok := within(h.root, p); !ok {
		if _, ok := within(h.rootReal, p); !ok {
			return nil, "", runner.Permanent(fmt.Errorf("outside the root folder %s", h.root))
		}
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, "", fileError(err)
	}
	rel, ok := within(h.rootReal, real)
	if !ok {
		return nil, "", runner.Permanent(fmt.Errorf("resolves to a file outside the root folder %s", h.root))
	}
	// Opening through os.Root refuses a component swapped for a symbolic
	// link to the outside after the check above.
	root, err := os.OpenRoot(h.rootReal)
	if err != nil {
		return nil, "", fmt.Errorf("open root folder: %w", err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, "", fileError(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	if fi.IsDir() {
		f.Close()
		return nil, "", runner.Permanent(errors.New("is a folder, not a file"))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, "", runner.Permanent(errors.New("not a regular file"))
	}
	if fi.Size() > h.cfg.MaxBodyBytes {
		f.Close()
		return nil, "", runner.Permanent(fmt.Errorf("body larger than %d bytes (file has %d)", h.cfg.MaxBodyBytes, fi.Size()))
	}
	return f, mime.TypeByExtension(filepath.Ext(real)), nil
}

// within returns p relative to base when p is base or below it.
func within(base, p string) (string, bool) {
	rel, err := filepath.Rel(base, p)
	if err != nil || (rel != "." && !filepath.IsLocal(rel)) {
		return "", false
	}
	return rel, true
}

// fileError marks a failure to open a local file as permanent, unless the
// process merely ran out of file descriptors.
func fileError(err error) error {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return err
	}
	return runner.Permanent(err)
}
