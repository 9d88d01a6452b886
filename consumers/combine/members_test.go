package combine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// startMembers runs a combine member (and its runner) per folder of outs,
// writing chunks of format, until the returned stop is called.
func startMembers(t *testing.T, js jetstream.JetStream, topo *topology.Topology, outs []string, format chunk.Format) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	for _, out := range outs {
		cfg := DefaultConfig()
		cfg.Out, cfg.Format, cfg.ChunkRecords, cfg.Idle = out, format, 300, 100*time.Millisecond
		c, err := New(js, topo.Manifest, topo.Chunks, cfg)
		require.NoError(t, err)
		r, err := runner.New(js, topo.Combine, runner.HandlerFunc(c.Handle), runner.Config{Stage: "combine", Workers: 64})
		require.NoError(t, err)
		g.Go(func() error { return c.Run(gctx) })
		g.Go(func() error { return r.Run(gctx) })
	}
	t.Cleanup(cancel)
	return func() error {
		cancel()
		return g.Wait()
	}
}

// loadLedger brings the folder out up to the ledger the way a restart of
// its member would: files placed, manifest.json written.
func loadLedger(t *testing.T, js jetstream.JetStream, topo *topology.Topology, out string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Out = out
	c, err := New(js, topo.Manifest, topo.Chunks, cfg)
	require.NoError(t, err)
	ctx := context.Background()
	w, err := topo.Manifest.WatchAll(ctx, jetstream.IgnoreDeletes())
	require.NoError(t, err)
	require.NoError(t, c.load(ctx, w.Updates()))
	require.NoError(t, w.Stop())
}

// Two combine members in one consumer group, each with its own folder: no
// record lost or duplicated, and each folder is a full copy of the dataset.
func TestTwoMembersOneDataset(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	require.NoError(t, err)

	outs := []string{t.TempDir(), t.TempDir()}
	stop := startMembers(t, js, topo, outs, chunk.JSONL)
	const sources, rows = 60, 50
	publishBatches(t, js, sources, rows)
	require.Eventually(t, func() bool {
		info, err := topo.Combine.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop())

	// The last commit of each member wrote its manifest; bring both up to date
	// the way a restart would, then check each folder.
	for _, out := range outs {
		loadLedger(t, js, topo, out)
		checkDataset(t, js, out, "ds", sources*rows)
		checkSwept(t, js, out, "ds")
	}
}

// Two members that widen one dataset at once agree on its schema, and
// each chunk is rewritten once: every folder holds each record once, in
// files that all type id as a string.
func TestTwoMembersWidenOneDataset(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	require.NoError(t, err)

	outs := []string{t.TempDir(), t.TempDir()}
	stop := startMembers(t, js, topo, outs, chunk.Parquet)
	const sources, rows = 30, 50
	drained := func() bool {
		info, err := topo.Combine.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}
	publishBatches(t, js, sources, rows)
	require.Eventually(t, drained, 30*time.Second, 50*time.Millisecond)
	// Codes, some of every few sources: both members widen id.
	for s := range 10 {
		b := &wire.RecordBatch{SourceID: fmt.Sprint("codes", s), Dataset: "ds", Rows: 2, Last: true,
			Columns: []wire.Column{{Name: "id", Type: wire.TypeString, Strings: []string{fmt.Sprintf("0%d", 2*s), fmt.Sprintf("0%d", 2*s+1)}}}}
		data, err := wire.Encode(b)
		require.NoError(t, err)
		_, err = js.Publish(ctx, "trainfeed.records.ds", data, jetstream.WithMsgID(wire.RecordsMsgID(b.Dataset, b.SourceID, b.Part)))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		m, err := dataset.ReadManifest(outs[0], "ds")
		return err == nil && m.Records == sources*rows+20 && drained()
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop())

	want := []wire.Field{{Name: "id", Type: wire.TypeString}}
	for _, out := range outs {
		loadLedger(t, js, topo, out)

		m, err := dataset.ReadManifest(out, "ds")
		require.NoError(t, err)
		require.Equal(t, want, m.Schema)
		for _, ch := range m.Chunks {
			require.Equal(t, want, m.SchemaOf(ch), "chunk %d", ch.Seq)
		}
		seen := checkStringIDs(t, out, m, chunk.Parquet, sources*rows+20)
		require.Equal(t, 1, seen["07"])
		require.Equal(t, 1, seen["7"])
	}
}
