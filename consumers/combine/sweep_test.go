package combine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A sweep deletes chunk objects that no manifest entry lists once they are
// older than the cutoff; committed chunks and recent uploads (a commit that
// may still create its entry) stay.
func TestSweepDeletesOldUnlistedChunkObjects(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Out, cfg.Format = t.TempDir(), chunk.JSONL
	c, err := New(js, topo.Manifest, topo.Chunks, cfg)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	<-c.ready

	// One committed chunk (the idle flush commits it).
	b := &wire.RecordBatch{SourceID: "s", Dataset: "ds", Rows: 2, Last: true,
		Columns: []wire.Column{{Name: "id", Type: wire.TypeInt, Ints: []int64{1, 2}}}}
	data, err := wire.Encode(b)
	require.NoError(t, err)
	require.NoError(t, c.Handle(ctx, &runner.Msg{Subject: "trainfeed.records.ds", Dataset: "ds", Data: data, Delivered: 1, StreamSeq: 1}))
	m, err := dataset.ReadManifest(cfg.Out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 1)
	committed := m.Chunks[0].Object
	require.NotEmpty(t, committed)

	old := "ds/" + strings.Repeat("a", 64) + ".jsonl"
	_, err = topo.Chunks.PutBytes(ctx, old, []byte("{\"id\":3}\n"))
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	recent := "ds/" + strings.Repeat("b", 64) + ".jsonl"
	_, err = topo.Chunks.PutBytes(ctx, recent, []byte("{\"id\":4}\n"))
	require.NoError(t, err)

	n, err := c.sweep(ctx, cutoff)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = topo.Chunks.GetInfo(ctx, old)
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)
	_, err = topo.Chunks.GetInfo(ctx, recent)
	require.NoError(t, err)
	got, err := topo.Chunks.GetBytes(ctx, committed)
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join(cfg.Out, "ds", m.Chunks[0].File))
	require.NoError(t, err)
	require.Equal(t, want, got)

	n, err = c.sweep(ctx, cutoff)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is left to sweep")

	// An entry the ledger cannot read might list any chunk: no more sweeping.
	_, err = topo.Manifest.Put(ctx, "ds.unreadable", []byte{0xc1})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.unreadable
	}, 10*time.Second, 10*time.Millisecond)
	_, err = c.sweep(ctx, time.Now().Add(time.Minute))
	require.ErrorContains(t, err, "not sweeping")
	_, err = topo.Chunks.GetInfo(ctx, recent)
	require.NoError(t, err)
}

// checkSwept loads the ledger as a restarted member does, sweeps with every
// unlisted object counted as old, and checks that the chunks object store
// then holds exactly the chunks of the manifest. It returns how many
// objects the sweep deleted.
func checkSwept(t *testing.T, js jetstream.JetStream, out, ds string) int {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, topology.BucketManifest)
	require.NoError(t, err)
	obs, err := js.ObjectStore(ctx, topology.BucketChunks)
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Out, cfg.Format = out, chunk.JSONL
	c, err := New(js, kv, obs, cfg)
	require.NoError(t, err)
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	require.NoError(t, err)
	require.NoError(t, c.load(ctx, w.Updates()))
	require.NoError(t, w.Stop())
	n, err := c.sweep(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)

	m, err := dataset.ReadManifest(out, ds)
	require.NoError(t, err)
	var want, got []string
	for _, ch := range m.Chunks {
		want = append(want, ch.Object)
	}
	infos, err := obs.List(ctx)
	require.NoError(t, err)
	for _, info := range infos {
		got = append(got, info.Name)
	}
	require.ElementsMatch(t, want, got, "the chunks object store holds the manifest's chunks, no more")
	return n
}
