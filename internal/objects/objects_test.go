package objects_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/objects"
)

// What PutNew writes reads back through nats.go's ObjectStore exactly as if
// Put had written it, digest checked; a failed write leaves no chunk.
func TestPutNew(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "b"})
	require.NoError(t, err)
	st, err := objects.Open(ctx, js, "b")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, objects.ChunkSize - 1, objects.ChunkSize, objects.ChunkSize + 1, 5*objects.ChunkSize + 7} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(data)
		name := "obj/" + hex.EncodeToString(sum[:])
		meta := jetstream.ObjectMeta{Name: name, Headers: map[string][]string{"Content-Type": {"text/csv"}}}
		require.NoError(t, st.PutNew(ctx, meta, bytes.NewReader(data), int64(size), hex.EncodeToString(sum[:])))
		got, err := obs.GetBytes(ctx, name)
		require.NoError(t, err, "size %d", size)
		require.Equal(t, data, got, "size %d", size)
		info, err := obs.GetInfo(ctx, name)
		require.NoError(t, err)
		require.EqualValues(t, size, info.Size)
		require.Equal(t, "text/csv", info.Headers.Get("Content-Type"))
	}

	// Fewer bytes than promised: nothing is stored, no chunk is left.
	data := bytes.Repeat([]byte("x"), 3*objects.ChunkSize)
	sum := sha256.Sum256(data)
	err = st.PutNew(ctx, jetstream.ObjectMeta{Name: "short"}, bytes.NewReader(data[:objects.ChunkSize]), int64(len(data)), hex.EncodeToString(sum[:]))
	require.ErrorContains(t, err, "read 131072 bytes of 393216")
	_, err = obs.GetInfo(ctx, "short")
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)
	s, err := js.Stream(ctx, "OBJ_b")
	require.NoError(t, err)
	before, err := s.Info(ctx)
	require.NoError(t, err)
	names, err := obs.List(ctx)
	require.NoError(t, err)
	var chunks uint64
	for _, n := range names {
		chunks += uint64(n.Chunks)
	}
	require.Equal(t, chunks+uint64(len(names)), before.State.Msgs, "chunks of the failed write are purged")

	require.ErrorContains(t, st.PutNew(ctx, jetstream.ObjectMeta{Name: "bad"}, bytes.NewReader(nil), 0, "zz"), "not a hex sha-256")
}

// A store refusing some chunks (it is full) fails the write, and the
// chunks it took are purged: none is left behind.
func TestPutNewRefused(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "small", MaxBytes: 3 * objects.ChunkSize})
	require.NoError(t, err)
	st, err := objects.Open(ctx, js, "small")
	require.NoError(t, err)
	data := bytes.Repeat([]byte("y"), 6*objects.ChunkSize)
	sum := sha256.Sum256(data)
	err = st.PutNew(ctx, jetstream.ObjectMeta{Name: "big"}, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]))
	require.ErrorContains(t, err, "store big")
	s, err := js.Stream(ctx, "OBJ_small")
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs, "the chunks the store took are purged")
}

// Lazy.Put writes a new name with PutNew and replaces an existing one with
// ObjectStore.Put, checking what Put hashed: bytes that are not what the
// digest says are refused and removed.
func TestLazyPut(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "lazy"})
	require.NoError(t, err)
	l := objects.NewLazy(js, obs)
	data := bytes.Repeat([]byte("z"), objects.ChunkSize+3)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	meta := jetstream.ObjectMeta{Name: "obj/" + hexSum}
	for _, exists := range []bool{false, true} {
		require.NoError(t, l.Put(ctx, meta, bytes.NewReader(data), int64(len(data)), hexSum, exists), "exists %v", exists)
		got, err := obs.GetBytes(ctx, meta.Name)
		require.NoError(t, err)
		require.Equal(t, data, got)
	}

	other := sha256.Sum256([]byte("other"))
	err = l.Put(ctx, meta, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(other[:]), true)
	require.ErrorContains(t, err, "want")
	_, err = obs.GetInfo(ctx, meta.Name)
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)
}
