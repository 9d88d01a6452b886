package combine

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// Two combine members in one consumer group, each with its own folder: no
// record lost or duplicated, and each folder is a full copy of the dataset.
func TestTwoMembersOneDataset(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	require.NoError(t, err)

	outs := []string{t.TempDir(), t.TempDir()}
	runCtx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(runCtx)
	for _, out := range outs {
		cfg := DefaultConfig()
		cfg.Out, cfg.Format, cfg.ChunkRecords, cfg.Idle = out, chunk.JSONL, 300, 100*time.Millisecond
		c, err := New(js, topo.Manifest, topo.Chunks, cfg)
		require.NoError(t, err)
		r, err := runner.New(js, topo.Combine, runner.HandlerFunc(c.Handle), runner.Config{Stage: "combine", Workers: 64})
		require.NoError(t, err)
		g.Go(func() error { return c.Run(gctx) })
		g.Go(func() error { return r.Run(gctx) })
	}
	const sources, rows = 60, 50
	publishBatches(t, js, sources, rows)
	require.Eventually(t, func() bool {
		info, err := topo.Combine.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 30*time.Second, 50*time.Millisecond)
	stop()
	require.NoError(t, g.Wait())

	// The last commit of each member wrote its manifest; bring both up to date
	// the way a restart would, then check each folder.
	for _, out := range outs {
		cfg := DefaultConfig()
		cfg.Out, cfg.Format = out, chunk.JSONL
		c, err := New(js, topo.Manifest, topo.Chunks, cfg)
		require.NoError(t, err)
		w, err := topo.Manifest.WatchAll(ctx, jetstream.IgnoreDeletes())
		require.NoError(t, err)
		require.NoError(t, c.load(ctx, w.Updates()))
		require.NoError(t, w.Stop())
		checkDataset(t, js, out, "ds", sources*rows)
		checkSwept(t, js, out, "ds")
	}
}
