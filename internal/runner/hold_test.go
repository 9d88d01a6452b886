package runner_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// A handler whose downstream stream is full is held, not retried: the
// message keeps its attempts, nothing is dead-lettered, and it completes
// once the stream drains.
func TestRunnerHoldsWhileDownstreamFull(t *testing.T) {
	r := newRig(t, 4, time.Second, 2)
	ctx := context.Background()
	_, err := r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "DOWN", Subjects: []string{"down.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew,
	})
	require.NoError(t, err)
	var fullSeen atomic.Int64
	var observed []runner.Outcome
	outcomes := make(chan runner.Outcome, 10)
	run, _ := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		_, err := r.js.Publish(ctx, "down.x", m.Data)
		if topology.IsFull(err) {
			fullSeen.Add(1)
		}
		return err
	}), runner.Config{Observe: func(m *runner.Msg, o runner.Outcome, took time.Duration) { outcomes <- o }})
	r.publish(t, 2)

	// The first fills DOWN; the second is held past AckWait and MaxDeliver's worth of time.
	require.Equal(t, runner.OutcomeAcked, <-outcomes)
	// Tries at 0, .25, .75 and 1.75s: past the 1s AckWait.
	require.Eventually(t, func() bool { return fullSeen.Load() >= 4 }, 10*time.Second, 10*time.Millisecond)
	info, err := r.cons.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, info.NumAckPending, "the held message stays delivered to us")
	require.Zero(t, info.NumRedelivered, "in-progress keeps a held message from redelivery")
	st := run.Stats()
	require.Zero(t, st.Retried.Load())
	require.Zero(t, st.DeadLettered.Load())
	require.EqualValues(t, 1, st.InFlight.Load())

	// Drain DOWN: the held message completes on its next try.
	s, err := r.js.Stream(ctx, "DOWN")
	require.NoError(t, err)
	require.NoError(t, s.Purge(ctx))
	select {
	case o := <-outcomes:
		observed = append(observed, o)
	case <-time.After(10 * time.Second):
		t.Fatal("held message did not complete after the stream drained")
	}
	require.Equal(t, []runner.Outcome{runner.OutcomeAcked}, observed)
	require.EqualValues(t, 2, st.Acked.Load())
	require.Zero(t, st.Retried.Load())
	require.Eventually(t, func() bool {
		ack, num := r.pending(t)
		return ack+num == 0
	}, 15*time.Second, 10*time.Millisecond)
}

// A runner stopping while it holds a message hands it back at once, whether
// it holds the message itself or its handler holds it with WhileFull.
func TestRunnerHandsBackHeldOnStop(t *testing.T) {
	for _, tt := range []struct {
		name      string
		whileFull bool
	}{
		{name: "runner holds"},
		{name: "handler holds", whileFull: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 4, 30*time.Second, 5)
			ctx := context.Background()
			_, err := r.js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "DOWN", Subjects: []string{"down.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew,
			})
			require.NoError(t, err)
			_, err = r.js.Publish(ctx, "down.x", []byte("filler"))
			require.NoError(t, err)
			held := make(chan struct{}, 1)
			publish := func(ctx context.Context, m *runner.Msg) error {
				_, err := r.js.Publish(ctx, "down.x", m.Data)
				select {
				case held <- struct{}{}:
				default:
				}
				return err
			}
			run, stop := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
				if tt.whileFull {
					return runner.WhileFull(ctx, func() error { return publish(ctx, m) }, nil)
				}
				return publish(ctx, m)
			}), runner.Config{})
			r.publish(t, 1)
			<-held
			start := time.Now()
			stop()
			require.Less(t, time.Since(start), 2*time.Second, "a held message must not wait for the grace period")
			require.GreaterOrEqual(t, run.Stats().HandedBack.Load(), int64(1))
			require.Zero(t, run.Stats().Retried.Load())
			r.requireHandedBack(t, 1)
		})
	}
}

func TestIsFull(t *testing.T) {
	require.False(t, topology.IsFull(nil))
	require.False(t, topology.IsFull(errors.New("maximum messages exceeded")))
	require.False(t, topology.IsFull(&jetstream.APIError{ErrorCode: 10077, Description: "message size exceeds maximum allowed"}))
	require.True(t, topology.IsFull(&jetstream.APIError{ErrorCode: 10077, Description: "maximum bytes exceeded"}))
	require.True(t, topology.IsFull(&jetstream.APIError{ErrorCode: 10047, Description: "insufficient storage resources available"}))
}
