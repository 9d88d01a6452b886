package combine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func batch(source string, part int, last bool, ids ...int64) *wire.RecordBatch {
	return &wire.RecordBatch{
		SourceID: source, Dataset: "ds", URL: "http://x/" + source, Part: part, Last: last, Rows: len(ids),
		Columns: []wire.Column{{Name: "id", Type: wire.TypeInt, Ints: ids}},
	}
}

type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	topo  *topology.Topology
	out   string
	seq   uint64
	calls chan error
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	topo, err := topology.Ensure(context.Background(), js, topology.DefaultConfig())
	require.NoError(t, err)
	return &rig{t: t, js: js, topo: topo, out: t.TempDir()}
}

// start runs a combiner until the returned stop is called (or the test ends).
func (r *rig) start(cfg combine.Config) (*combine.Combiner, func()) {
	r.t.Helper()
	cfg.Out = r.out
	c, err := combine.New(r.js, r.topo.Manifest, r.topo.Chunks, cfg)
	require.NoError(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(r.t, <-done)
		}
	}
	r.t.Cleanup(stop)
	return c, stop
}

// handle calls Handle as the runner would, in the background.
func (r *rig) handle(c *combine.Combiner, b *wire.RecordBatch) chan error {
	r.t.Helper()
	data, err := wire.Encode(b)
	require.NoError(r.t, err)
	r.seq++
	m := &runner.Msg{Subject: "trainfeed.records.ds", Dataset: "ds", Data: data, Delivered: 1, StreamSeq: r.seq}
	res := make(chan error, 1)
	go func() { res <- c.Handle(context.Background(), m) }()
	return res
}

func wait(t *testing.T, res chan error) {
	t.Helper()
	select {
	case err := <-res:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return")
	}
}

func TestCombineChunksAndDedupes(t *testing.T) {
	r := newRig(t)
	cfg := combine.DefaultConfig()
	cfg.Format = chunk.JSONL
	cfg.ChunkRecords = 4
	c, stop := r.start(cfg)

	// Two batches of 2 fill one chunk of 4: both handlers return once it commits.
	a, b := r.handle(c, batch("a", 0, true, 1, 2)), r.handle(c, batch("b", 0, false, 3, 4))
	wait(t, a)
	wait(t, b)
	m, err := dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 1)
	require.EqualValues(t, 4, m.Records)
	require.Len(t, m.Chunks[0].Parts, 2)

	// A redelivered batch that is already committed is acked, not written.
	wait(t, r.handle(c, batch("a", 0, true, 1, 2)))
	// The rest of b arrives; the idle flush commits it.
	wait(t, r.handle(c, batch("b", 1, true, 5)))
	m, err = dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 2)
	require.EqualValues(t, 5, m.Records)
	require.Equal(t, uint64(2), m.Chunks[1].Seq)
	stop()

	// A restarted combiner knows the committed batches, and removes the
	// pending files no entry lists; a chunk file only a commit names stays.
	orphan := filepath.Join(r.out, "ds", ".pending-deadbeef.jsonl")
	require.NoError(t, os.WriteFile(orphan, []byte("{}\n"), 0o644))
	stray := filepath.Join(r.out, "ds", "chunk-000000000003-deadbeef.jsonl")
	require.NoError(t, os.WriteFile(stray, []byte("{}\n"), 0o644))
	c2, _ := r.start(cfg)
	wait(t, r.handle(c2, batch("b", 1, true, 5)))
	_, err = os.Stat(orphan)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.FileExists(t, stray)
	require.NoError(t, os.Remove(stray))
	m, err = dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 2)
	require.EqualValues(t, 5, m.Records)

	// Every commit was announced once, in order.
	s, err := r.js.Stream(context.Background(), topology.StreamChunks)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs)
	for seq := uint64(1); seq <= 2; seq++ {
		raw, err := s.GetMsg(context.Background(), seq)
		require.NoError(t, err)
		var ch wire.Chunk
		require.NoError(t, wire.Decode(raw.Data, &ch))
		require.Equal(t, seq, ch.Seq)
	}
}

func TestCombineFlushPolicies(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*combine.Config)
		feed   int // batches of 10 records, sent one after another
		chunks int
	}{
		{name: "records", cfg: func(c *combine.Config) { c.ChunkRecords = 20; c.Idle = time.Hour; c.MaxAge = time.Hour }, feed: 4, chunks: 2},
		{name: "held messages", cfg: func(c *combine.Config) { c.MaxHeld = 1; c.Idle = time.Hour; c.MaxAge = time.Hour }, feed: 3, chunks: 3},
		{name: "bytes", cfg: func(c *combine.Config) { c.ChunkBytes = 80; c.Idle = time.Hour; c.MaxAge = time.Hour }, feed: 2, chunks: 2},
		{name: "idle", cfg: func(c *combine.Config) { c.Idle = 50 * time.Millisecond }, feed: 1, chunks: 1},
		{name: "age", cfg: func(c *combine.Config) { c.Idle = time.Hour; c.MaxAge = 100 * time.Millisecond }, feed: 1, chunks: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			cfg := combine.DefaultConfig()
			cfg.Format = chunk.JSONL
			tt.cfg(&cfg)
			c, _ := r.start(cfg)
			var res []chan error
			for i := range tt.feed {
				ids := make([]int64, 10)
				for j := range ids {
					ids[j] = int64(i*10 + j)
				}
				res = append(res, r.handle(c, batch(fmt.Sprint("s", i), 0, true, ids...)))
				time.Sleep(20 * time.Millisecond) // keep arrival order
			}
			for _, ch := range res {
				wait(t, ch)
			}
			m, err := dataset.ReadManifest(r.out, "ds")
			require.NoError(t, err)
			require.Len(t, m.Chunks, tt.chunks)
			require.EqualValues(t, 10*tt.feed, m.Records)
		})
	}
}

func TestCombineStopFlushesHeldBatches(t *testing.T) {
	r := newRig(t)
	cfg := combine.DefaultConfig()
	cfg.Format = chunk.Parquet
	cfg.Idle, cfg.MaxAge = time.Hour, time.Hour
	c, stop := r.start(cfg)
	res := r.handle(c, batch("a", 0, true, 1, 2, 3))
	time.Sleep(100 * time.Millisecond)
	stop()
	wait(t, res)
	m, err := dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Records)
}

func TestCombineRefusesMalformedBatches(t *testing.T) {
	r := newRig(t)
	c, _ := r.start(combine.DefaultConfig())
	bad := batch("a", 0, true, 1, 2)
	bad.Rows = 3
	data, err := wire.Encode(bad)
	require.NoError(t, err)
	for _, payload := range [][]byte{[]byte("garbage"), data} {
		err := c.Handle(context.Background(), &runner.Msg{Subject: "trainfeed.records.ds", Dataset: "ds", Data: payload})
		require.Error(t, err)
		require.True(t, runner.IsPermanent(err), err)
	}
}
