package dataset

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/trainfeed/trainfeed/internal/chunk"
)

// CommittedPrefix starts the name of every committed chunk file.
const CommittedPrefix = "chunk-"

// SupersedeDir holds, inside a dataset folder, the adopted chunk files
// that rewrites in a widened schema replaced: files another ledger wrote
// are moved there, never deleted.
const SupersedeDir = ".superseded"

// Dir returns the folder of dataset name under out.
func Dir(out, name string) string { return filepath.Join(out, name) }

// ChunkFile is the name of a committed chunk file: sorting names is commit
// order, and the digest's first 8 hex digits tell rewrites of a seq apart.
func ChunkFile(seq uint64, sha string, f chunk.Format) string {
	return fmt.Sprintf("%s%012d-%s%s", CommittedPrefix, seq, sha[:8], f.Ext())
}

// PendingFile is the name a chunk file has between its write and its commit.
func PendingFile(sha string, f chunk.Format) string { return ".pending-" + sha + f.Ext() }

// IsCommittedName reports whether name is a chunk file's committed name:
// only a commit gives a file one.
func IsCommittedName(name string) bool { return strings.HasPrefix(name, CommittedPrefix) }

// IsLeftoverName reports whether name is one a chunk file has before its
// commit: a crash leaves such files behind.
func IsLeftoverName(name string) bool {
	return strings.HasPrefix(name, ".pending-") || strings.HasPrefix(name, ".tmp-")
}

// ChunkFiles returns the names of the committed chunk files in dir, none
// when dir does not exist.
func ChunkFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && IsCommittedName(e.Name()) {
			files = append(files, e.Name())
		}
	}
	return files, nil
}

// CreateTemp creates a new file in dir named by pattern with a random
// string for its last "*", as os.CreateTemp does, but readable by others
// (0644, less what the umask takes away) rather than 0600: a dataset's
// files are for trainers, who may run as another user.
func CreateTemp(dir, pattern string) (*os.File, error) {
	prefix, suffix := pattern, ""
	if i := strings.LastIndex(pattern, "*"); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 36)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
}
