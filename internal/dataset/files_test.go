package dataset_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
)

// umask returns the process's umask.
func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

// A dataset's files are readable by a trainer running as another user:
// 0644 less the umask, not os.CreateTemp's 0600.
func TestFilesAreReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	f, err := dataset.CreateTemp(dir, ".tmp-chunk-*.parquet")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	name := filepath.Base(f.Name())
	require.True(t, strings.HasPrefix(name, ".tmp-chunk-") && strings.HasSuffix(name, ".parquet"), name)
	want := 0o644 &^ umask()
	fi, err := os.Stat(f.Name())
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode().Perm())

	require.NoError(t, dataset.WriteManifest(dir, dataset.NewManifest("ds")))
	fi, err = os.Stat(filepath.Join(dir, "ds", dataset.ManifestFile))
	require.NoError(t, err)
	require.Equal(t, want, fi.Mode().Perm())
}
