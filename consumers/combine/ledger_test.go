package combine_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// tree returns every file under dir with its contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		files[path] = string(data)
		return err
	}))
	return files
}

func inDataset(b *wire.RecordBatch, dataset string) *wire.RecordBatch {
	b.Dataset = dataset
	return b
}

// TestAnotherLedgerLeavesDatasetsAlone: a combiner on another manifest
// bucket (another store, or one made anew) never deletes or rewrites a
// dataset it does not know; the first batch of such a dataset adopts it,
// continuing its sequence and knowing its parts.
func TestAnotherLedgerLeavesDatasetsAlone(t *testing.T) {
	cfg := combine.DefaultConfig()
	cfg.Format = chunk.Parquet
	cfg.ChunkRecords = 2

	first := newRig(t)
	c, stop := first.start(cfg)
	wait(t, first.handle(c, batch("a", 0, true, 1, 2)))
	wait(t, first.handle(c, batch("b", 0, true, 3, 4)))
	wait(t, first.handle(c, inDataset(batch("k", 0, true, 9, 9), "kept")))
	stop()
	// A crash's leftover that this ledger's manifest does not list.
	leftover := filepath.Join(first.out, "kept", ".pending-0000.parquet")
	require.NoError(t, os.WriteFile(leftover, []byte("x"), 0o644))
	before := tree(t, first.out)

	second := newRig(t)
	second.out = first.out
	c2, stop2 := second.start(cfg)
	wait(t, second.handle(c2, inDataset(batch("n", 0, true, 5, 6), "new")))
	stop2()
	after := tree(t, first.out)
	for path, data := range before {
		require.Equal(t, data, after[path], "%s changed by a combiner of another ledger", path)
	}

	// A batch of ds adopts it: the old chunks stay as they were, listed,
	// new chunks continue their sequence, and a part already in them is known.
	c2, stop2 = second.start(cfg)
	wait(t, second.handle(c2, batch("a", 0, true, 1, 2)))
	wait(t, second.handle(c2, batch("c", 0, true, 7, 8)))
	stop2()
	m, err := dataset.ReadManifest(first.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 3)
	require.EqualValues(t, 6, m.Records)
	require.Equal(t, uint64(3), m.Chunks[2].Seq)
	require.Equal(t, "c", m.Chunks[2].Parts[0].SourceID)
	for path, data := range before {
		if filepath.Base(path) != dataset.ManifestFile {
			require.Equal(t, data, tree(t, first.out)[path], "%s changed by adoption", path)
		}
	}
	// The adopted chunks are in this ledger's chunks object store too.
	for _, ch := range m.Chunks {
		require.NotEmpty(t, ch.Object)
		_, err := second.topo.Chunks.GetInfo(context.Background(), ch.Object)
		require.NoError(t, err)
	}

	// The first ledger now shares a folder with the second: it refuses to
	// start instead of repairing what the other wrote.
	cfg.Out = first.out
	c3, err := combine.New(first.js, first.topo.Manifest, first.topo.Chunks, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c3.Run(ctx)
	require.ErrorContains(t, err, "holds chunks of it too")
	require.Equal(t, tree(t, first.out)[leftover], "x")
}

// TestFoldersNotOursAreNotTouched: a folder in --out that no manifest names
// gets nothing written into it at start; a dataset folder with chunk files
// its manifest does not list is refused at its first batch, with a reason,
// and loses nothing.
func TestFoldersNotOursAreNotTouched(t *testing.T) {
	cfg := combine.DefaultConfig()
	cfg.ChunkRecords = 2
	first := newRig(t)
	c, stop := first.start(cfg)
	wait(t, first.handle(c, batch("a", 0, true, 1, 2)))
	stop()
	stray := filepath.Join(first.out, "ds", "chunk-000000000002-cafebabe.jsonl")
	require.NoError(t, os.WriteFile(stray, []byte("{\"id\":3}\n"), 0o644))
	notes := filepath.Join(first.out, "notes", "readme.txt")
	require.NoError(t, os.MkdirAll(filepath.Dir(notes), 0o755))
	require.NoError(t, os.WriteFile(notes, []byte("mine"), 0o644))
	before := tree(t, first.out)

	second := newRig(t)
	second.out = first.out
	c2, stop2 := second.start(cfg)
	defer stop2()
	res := second.handle(c2, batch("b", 0, true, 4, 5))
	select {
	case err := <-res:
		require.True(t, runner.IsPermanent(err), "%v", err)
		require.ErrorContains(t, err, "does not list (chunk-000000000002-cafebabe.jsonl)")
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return")
	}
	stop2()
	require.Equal(t, before, tree(t, first.out))
}
