package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// followRig is a server with the topology and a combiner of chunks of two
// records writing to out; mirror is a folder to follow into.
type followRig struct {
	js          jetstream.JetStream
	topo        *topology.Topology
	c           *combine.Combiner
	out, mirror string
}

func newFollowRig(t *testing.T) *followRig {
	t.Helper()
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	topo, err := topology.Ensure(context.Background(), js, topology.DefaultConfig())
	require.NoError(t, err)
	r := &followRig{js: js, topo: topo, out: t.TempDir(), mirror: t.TempDir()}
	cfg := combine.DefaultConfig()
	cfg.Out, cfg.ChunkRecords = r.out, 2
	r.c, err = combine.New(js, topo.Manifest, topo.Chunks, cfg)
	require.NoError(t, err)
	return r
}

// A follower mirrors chunks as they commit and replaces the ones a
// widening rewrote: the mirror ends with the same files as the source.
func TestFollowReplacesRewrittenChunks(t *testing.T) {
	r := newFollowRig(t)
	js, topo, c, out, mirror := r.js, r.topo, r.c, r.out, r.mirror
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	combined := make(chan error, 1)
	go func() { combined <- c.Run(ctx) }()
	f, err := dataset.NewFollower(js, topo.Manifest, topo.Chunks, dataset.FollowConfig{Dataset: "ds", Out: mirror})
	require.NoError(t, err)
	followed := make(chan error, 1)
	go func() { followed <- f.Run(ctx) }()

	handle := func(src string, col wire.Column) {
		t.Helper()
		b := &wire.RecordBatch{SourceID: src, Dataset: "ds", Last: true, Rows: col.Len(), Columns: []wire.Column{col}}
		data, err := wire.Encode(b)
		require.NoError(t, err)
		require.NoError(t, c.Handle(ctx, &runner.Msg{Subject: "trainfeed.records.ds", Dataset: "ds", Data: data, Delivered: 1}))
	}
	same := func() bool {
		src, err1 := dataset.ReadManifest(out, "ds")
		dst, err2 := dataset.ReadManifest(mirror, "ds")
		if err1 != nil || err2 != nil || len(src.Chunks) != len(dst.Chunks) {
			return false
		}
		for i := range src.Chunks {
			if src.Chunks[i].SHA256 != dst.Chunks[i].SHA256 {
				return false
			}
		}
		files, _ := filepath.Glob(filepath.Join(mirror, "ds", "chunk-*"))
		return len(files) == len(dst.Chunks)
	}
	handle("a", wire.Column{Name: "zip", Type: wire.TypeInt, Ints: []int64{501, 90210}})
	handle("b", wire.Column{Name: "zip", Type: wire.TypeInt, Ints: []int64{7, 8}})
	require.Eventually(t, same, 20*time.Second, 20*time.Millisecond, "mirror before the widening")
	first, err := dataset.ReadManifest(mirror, "ds")
	require.NoError(t, err)

	handle("c", wire.Column{Name: "zip", Type: wire.TypeString, Strings: []string{"00501", "02134"}})
	require.Eventually(t, func() bool {
		m, err := dataset.ReadManifest(mirror, "ds")
		return err == nil && len(m.Chunks) == 3 && m.Chunks[0].Replaces != "" && m.Chunks[1].Replaces != "" && same()
	}, 20*time.Second, 20*time.Millisecond, "mirror after the rewrites")
	m, err := dataset.ReadManifest(mirror, "ds")
	require.NoError(t, err)
	require.Equal(t, []wire.Field{{Name: "zip", Type: wire.TypeString}}, m.Schema)
	for _, ch := range first.Chunks {
		_, err := os.Stat(filepath.Join(mirror, "ds", ch.File))
		require.ErrorIs(t, err, os.ErrNotExist, "replaced file %s is gone from the mirror", ch.File)
	}
	cancel()
	require.NoError(t, <-combined)
	require.NoError(t, <-followed)
}

// A follower that starts after chunks were rewritten twice, and the
// replaced uploads were swept, mirrors the chunks as they are now: old
// events name files that are gone, and it does not fetch them.
func TestFollowStartsAfterRewrites(t *testing.T) {
	r := newFollowRig(t)
	js, topo, c, out, mirror := r.js, r.topo, r.c, r.out, r.mirror
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cctx, stopCombine := context.WithCancel(ctx)
	combined := make(chan error, 1)
	go func() { combined <- c.Run(cctx) }()
	for i, col := range []wire.Column{
		{Name: "v", Type: wire.TypeInt, Ints: []int64{1, 2}},
		{Name: "v", Type: wire.TypeFloat, Floats: []float64{3.5, 4}},     // int → float
		{Name: "v", Type: wire.TypeString, Strings: []string{"05", "x"}}, // float → string
	} {
		b := &wire.RecordBatch{SourceID: string(rune('a' + i)), Dataset: "ds", Last: true, Rows: 2, Columns: []wire.Column{col}}
		data, err := wire.Encode(b)
		require.NoError(t, err)
		require.NoError(t, c.Handle(ctx, &runner.Msg{Subject: "trainfeed.records.ds", Dataset: "ds", Data: data, Delivered: 1}))
	}
	stopCombine() // finishes the rewrites
	require.NoError(t, <-combined)
	src, err := dataset.ReadManifest(out, "ds")
	require.NoError(t, err)
	require.Equal(t, 3, src.Chunks[0].SchemaVersion, "chunk 1 rewritten twice")

	// Sweep what no entry lists, as combine's sweep does after an hour.
	listed := map[string]bool{}
	for _, ch := range src.Chunks {
		listed[ch.Object] = true
	}
	infos, err := topo.Chunks.List(ctx)
	require.NoError(t, err)
	swept := 0
	for _, info := range infos {
		if !listed[info.Name] {
			require.NoError(t, topo.Chunks.Delete(ctx, info.Name))
			swept++
		}
	}
	require.Equal(t, 3, swept, "chunk 1's first two files and chunk 2's first")

	var mu sync.Mutex
	var seen []uint64
	f, err := dataset.NewFollower(js, topo.Manifest, topo.Chunks, dataset.FollowConfig{Dataset: "ds", Out: mirror, OnChunk: func(ch *wire.Chunk) {
		mu.Lock()
		seen = append(seen, ch.Seq)
		mu.Unlock()
	}})
	require.NoError(t, err)
	followed := make(chan error, 1)
	go func() { followed <- f.Run(ctx) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= 3
	}, 20*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-followed)
	dst, err := dataset.ReadManifest(mirror, "ds")
	require.NoError(t, err)
	require.Len(t, dst.Chunks, 3)
	for i := range src.Chunks {
		require.Equal(t, src.Chunks[i].SHA256, dst.Chunks[i].SHA256)
	}
	require.Equal(t, []uint64{1, 2, 3}, seen, "each chunk once, as it is now")
}
