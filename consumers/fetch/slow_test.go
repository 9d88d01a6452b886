package fetch_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// TestSlowBodyOutlivesAckWait trickles a body for three times the
// consumer's AckWait: the runner's in-progress signals keep the message, so
// it is downloaded once, published once and acked once.
func TestSlowBodyOutlivesAckWait(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var requests atomic.Int64
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		rc := http.NewResponseController(w)
		fmt.Fprintln(w, "id")
		for i := range 30 { // 3s
			fmt.Fprintln(w, i)
			_ = rc.Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	cons, err := e.js.CreateOrUpdateConsumer(ctx, topology.StreamSources, jetstream.ConsumerConfig{
		Durable: "slow", FilterSubject: topology.Subject(topology.SubjectSources, "slow"),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: 3, MaxAckPending: 4,
	})
	require.NoError(t, err)
	h := e.handler(t, fetch.Config{IdleBodyTimeout: time.Second})
	run, err := runner.New(e.js, cons, h, runner.Config{Stage: topology.ConsumerFetch, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	data, err := wire.Encode(&wire.Source{ID: "trickle", URL: srv.URL + "/slow.csv"})
	require.NoError(t, err)
	start := time.Now()
	_, err = e.js.Publish(ctx, topology.Subject(topology.SubjectSources, "slow"), data)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return run.Stats().Acked.Load() == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Greater(t, time.Since(start), 2500*time.Millisecond, "the body took longer than AckWait")

	time.Sleep(1500 * time.Millisecond) // a redelivery would arrive within AckWait
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.NumRedelivered)
	require.Zero(t, info.NumAckPending)
	require.EqualValues(t, 1, requests.Load(), "downloaded once")
	st := run.Stats()
	require.EqualValues(t, 1, st.Received.Load())
	require.Zero(t, st.Retried.Load())
	f, ok := e.fetched(t, "slow")
	require.True(t, ok)
	want := "id\n"
	for i := range 30 {
		want += fmt.Sprintln(i)
	}
	require.Equal(t, want, string(e.object(t, f.Object)), "the whole body")
}
