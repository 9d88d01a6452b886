package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// datasetFiles returns every file of the dataset folders under out (the
// store folder left out) with its contents.
func datasetFiles(t *testing.T, out string) map[string]string {
	t.Helper()
	files := map[string]string{}
	require.NoError(t, filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != out {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(out, path)
		files[rel] = string(data)
		return err
	}))
	return files
}

// A run whose store does not know the datasets already in --out — another
// --store, or the store folder removed to start afresh — leaves them byte
// for byte; a run of one of them adopts it: its chunks stay, new ones
// continue its sequence, and sources already in it are not written twice.
func TestRunLeavesDatasetsOfAnotherStore(t *testing.T) {
	const n, rows = 4, 50
	sources := csvSources(t, n, rows, func(int) time.Duration { return 0 })
	out := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"run", "--sources", sources, "--out", out, "--chunk-records", "60", "--allow-private", "-q"}, args...)
		stdout, code := trainfeed(t, ".", args...)
		require.Equal(t, 0, code, stdout)
		require.Contains(t, stdout, "sources: 4 ok, 0 failed")
		return stdout
	}
	run("--dataset", "first")
	before := datasetFiles(t, out)
	require.NotEmpty(t, before)

	run("--dataset", "second", "--store", t.TempDir())
	after := datasetFiles(t, out)
	for path, data := range before {
		require.Equal(t, data, after[path], "%s changed by a run with another store", path)
	}

	require.NoError(t, os.RemoveAll(filepath.Join(out, ".jetstream")))
	before = datasetFiles(t, out)
	run("--dataset", "third")
	after = datasetFiles(t, out)
	for path, data := range before {
		require.Equal(t, data, after[path], "%s changed by a run after the store was removed", path)
	}

	// The same sources into the first dataset again: adopted, nothing doubled.
	_, old := datasettest.ReadAll(t, out, "first")
	run("--dataset", "first")
	ids, m := datasettest.ReadAll(t, out, "first")
	require.EqualValues(t, n*rows, m.Records)
	require.Len(t, ids, n*rows)
	require.Equal(t, adopted(old.Chunks, m.Chunks[0].AdoptedFrom), m.Chunks)
	require.NotEmpty(t, m.Chunks[0].AdoptedFrom, "the adopted chunks name the ledger that wrote them")

	// New sources continue its sequence; the adopted chunks stay as they were.
	sources = csvSources(t, n, rows, func(int) time.Duration { return 0 })
	run("--dataset", "first")
	_, m = datasettest.ReadAll(t, out, "first")
	require.EqualValues(t, 2*n*rows, m.Records)
	require.Equal(t, adopted(old.Chunks, m.Chunks[0].AdoptedFrom), m.Chunks[:len(old.Chunks)])
	for i, ch := range m.Chunks {
		require.EqualValues(t, i+1, ch.Seq)
	}
	after = datasetFiles(t, out)
	for path, data := range before {
		if strings.HasPrefix(path, "first"+string(filepath.Separator)+"chunk-") {
			require.Equal(t, data, after[path], "%s changed by adoption", path)
		}
	}
}

// adopted returns chunks as a ledger that adopted them from ledger lists them.
func adopted(chunks []*wire.Chunk, ledger string) []*wire.Chunk {
	out := make([]*wire.Chunk, len(chunks))
	for i, ch := range chunks {
		cp := *ch
		cp.AdoptedFrom = ledger
		out[i] = &cp
	}
	return out
}
