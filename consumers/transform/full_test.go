package transform_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// When the records stream is full, transform waits with the source in hand
// and publishes on once combine makes room: the source neither fails nor
// is parsed again, and every part arrives once.
func TestFullRecordsStreamWaits(t *testing.T) {
	const rows, batchRows = 5000, 500
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := topology.DefaultConfig()
	cfg.Records.MaxMsgs = 2
	topo, err := topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)

	var body bytes.Buffer
	body.WriteString("id,name\n")
	for i := range rows {
		fmt.Fprintf(&body, "%d,row %d\n", i, i)
	}
	sum := sha256.Sum256(body.Bytes())
	object := "sha256/" + hex.EncodeToString(sum[:])
	_, err = topo.Bodies.PutBytes(ctx, object, body.Bytes())
	require.NoError(t, err)
	h, err := transform.New(js, topo.Bodies, transform.Config{MaxBatchRows: batchRows})
	require.NoError(t, err)
	data, err := wire.Encode(&wire.Fetched{SourceID: "s", Dataset: "ds", URL: "http://x/s.csv", Object: object,
		SHA256: hex.EncodeToString(sum[:]), Size: int64(body.Len()), Format: "csv"})
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		done <- h.Handle(ctx, &runner.Msg{Subject: "trainfeed.fetched.ds", Dataset: "ds", Data: data, Delivered: 1, StreamSeq: 1})
	}()
	// The stream fills and the source waits.
	s, err := js.Stream(ctx, topology.StreamRecords)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 2
	}, 10*time.Second, 20*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("transform returned while the records stream was full: %v", err)
	case <-time.After(time.Second):
	}

	// Combine makes room, a batch at a time: every part arrives once.
	parts := map[int]int{}
	for len(parts) < rows/batchRows {
		msgs, err := topo.Combine.Fetch(1, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for m := range msgs.Messages() {
			var b wire.RecordBatch
			require.NoError(t, wire.Decode(m.Data(), &b))
			parts[b.Part]++
			require.NoError(t, m.DoubleAck(ctx))
		}
	}
	require.NoError(t, <-done)
	for part, n := range parts {
		require.Equal(t, 1, n, "part %d", part)
	}
	require.Len(t, parts, rows/batchRows)
}
