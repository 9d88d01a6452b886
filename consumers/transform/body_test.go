package transform

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
)

func TestOpenBody(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bodies, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "bodies"})
	require.NoError(t, err)
	h := &Handler{js: js, bodies: bodies}

	for _, size := range []int{0, 1, 128 << 10, 128<<10 + 1, 3<<20 + 7} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		name := "obj"
		_, err := bodies.PutBytes(ctx, name, data)
		require.NoError(t, err)
		r, err := h.openBody(ctx, name)
		require.NoError(t, err, "size %d", size)
		got, err := io.ReadAll(r)
		require.NoError(t, err, "size %d", size)
		require.NoError(t, r.Close())
		require.True(t, bytes.Equal(data, got), "size %d: read %d bytes", size, len(got))
	}

	_, err = h.openBody(ctx, "missing")
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)

	// A link is followed.
	info, err := bodies.GetInfo(ctx, "obj")
	require.NoError(t, err)
	_, err = bodies.AddLink(ctx, "link", info)
	require.NoError(t, err)
	r, err := h.openBody(ctx, "link")
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, r)
	require.NoError(t, err)
	require.EqualValues(t, 3<<20+7, n)
	require.NoError(t, r.Close())
}

func TestBodyReaderRefusesAWrongDigest(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bodies, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "bodies"})
	require.NoError(t, err)
	_, err = bodies.PutBytes(ctx, "a", bytes.Repeat([]byte("a"), 1000))
	require.NoError(t, err)
	_, err = bodies.PutBytes(ctx, "b", bytes.Repeat([]byte("b"), 1000))
	require.NoError(t, err)
	a, err := bodies.GetInfo(ctx, "a")
	require.NoError(t, err)
	b, err := bodies.GetInfo(ctx, "b")
	require.NoError(t, err)
	h := &Handler{js: js, bodies: bodies}
	// b's chunks checked against a's digest, as if the chunks were damaged.
	r, err := h.openBody(ctx, "b")
	require.NoError(t, err)
	br := r.(*bodyReader)
	br.want, err = jetstream.DecodeObjectDigest(a.Digest)
	require.NoError(t, err)
	require.NotEqual(t, a.Digest, b.Digest)
	_, err = io.ReadAll(br)
	require.ErrorIs(t, err, errBodyDigest)
	require.NoError(t, r.Close())
}
