package runner_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

type rig struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
}

func newRig(t *testing.T, window int, ackWait time.Duration, maxDeliver int) *rig {
	t.Helper()
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy})
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: topology.StreamDLQ, Subjects: []string{topology.SubjectDLQ + ".>"}})
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(ctx, "WORK", topology.ConsumerConfig("w",
		topology.Window{MaxAckPending: window, AckWait: ackWait, MaxDeliver: maxDeliver}))
	require.NoError(t, err)
	return &rig{js: js, cons: cons}
}

func (r *rig) publish(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		_, err := r.js.Publish(context.Background(), "work.ds", fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
}

// start runs a runner until the test ends, and returns it and a stop func that waits for Run.
func (r *rig) start(t *testing.T, h runner.Handler, cfg runner.Config) (*runner.Runner, func()) {
	t.Helper()
	if cfg.Stage == "" {
		cfg.Stage = "test"
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 20 * time.Millisecond
	}
	run, err := runner.New(r.js, r.cons, h, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-done)
	})
	t.Cleanup(stop)
	return run, stop
}

func (r *rig) pending(t *testing.T) (ackPending, numPending int) {
	t.Helper()
	info, err := r.cons.Info(context.Background())
	require.NoError(t, err)
	return info.NumAckPending, int(info.NumPending)
}

// requireHandedBack checks that exactly n messages are left and that a new
// runner gets them at once, long before the 30s AckWait would redeliver them.
func (r *rig) requireHandedBack(t *testing.T, n int) {
	t.Helper()
	var got atomic.Int64
	r.start(t, runner.HandlerFunc(func(context.Context, *runner.Msg) error {
		got.Add(1)
		return nil
	}), runner.Config{Stage: "next"})
	require.Eventually(t, func() bool {
		ack, num := r.pending(t)
		return got.Load() == int64(n) && ack == 0 && num == 0
	}, 15*time.Second, 20*time.Millisecond, "in-flight work must be acked or handed back at once")
}

func (r *rig) deadLetters(t *testing.T, want int) []wire.DeadLetter {
	t.Helper()
	s, err := r.js.Stream(context.Background(), topology.StreamDLQ)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := s.Info(context.Background())
		return err == nil && int(info.State.Msgs) == want
	}, 10*time.Second, 20*time.Millisecond)
	var out []wire.DeadLetter
	for seq := uint64(1); seq <= uint64(want); seq++ {
		raw, err := s.GetMsg(context.Background(), seq)
		require.NoError(t, err)
		var dl wire.DeadLetter
		require.NoError(t, wire.Decode(raw.Data, &dl))
		out = append(out, dl)
	}
	return out
}

func TestRunnerOutcomes(t *testing.T) {
	transient := errors.New("connection reset")
	tests := []struct {
		name       string
		maxDeliver int
		// fail returns the handler's result for a delivery.
		fail        func(delivered uint64) error
		wantCalls   int
		wantDead    int
		wantReason  string
		wantAcked   int64
		wantRetried int64
	}{
		{name: "ack", maxDeliver: 5, fail: func(uint64) error { return nil }, wantCalls: 1, wantAcked: 1},
		{
			name: "retry then ack", maxDeliver: 5,
			fail: func(d uint64) error {
				if d < 3 {
					return transient
				}
				return nil
			},
			wantCalls: 3, wantAcked: 1, wantRetried: 2,
		},
		{
			name: "retry after", maxDeliver: 5,
			fail: func(d uint64) error {
				if d == 1 {
					return runner.RetryAfter(errors.New("429"), 50*time.Millisecond)
				}
				return nil
			},
			wantCalls: 2, wantAcked: 1, wantRetried: 1,
		},
		{
			name: "permanent", maxDeliver: 5,
			fail:      func(uint64) error { return runner.Permanent(errors.New("404 not found")) },
			wantCalls: 1, wantDead: 1, wantReason: "404 not found",
		},
		{
			name: "exhausted", maxDeliver: 3,
			fail:      func(uint64) error { return transient },
			wantCalls: 3, wantDead: 1, wantReason: "gave up after 3 attempts: connection reset", wantRetried: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 10, 5*time.Second, tt.maxDeliver)
			var calls atomic.Int64
			run, _ := r.start(t, runner.HandlerFunc(func(_ context.Context, m *runner.Msg) error {
				calls.Add(1)
				require.Equal(t, "ds", m.Dataset)
				return tt.fail(m.Delivered)
			}), runner.Config{Annotate: func(m *runner.Msg, dl *wire.DeadLetter) { dl.URL = "http://x/" + string(m.Data) }})
			r.publish(t, 1)
			require.Eventually(t, func() bool {
				ack, num := r.pending(t)
				return ack == 0 && num == 0 && calls.Load() == int64(tt.wantCalls)
			}, 10*time.Second, 10*time.Millisecond)
			if tt.wantDead > 0 {
				dls := r.deadLetters(t, tt.wantDead)
				require.Equal(t, tt.wantReason, dls[0].Error)
				require.Equal(t, "test", dls[0].Stage)
				require.Equal(t, "ds", dls[0].Dataset)
				require.Equal(t, "work.ds", dls[0].Subject)
				require.Equal(t, "0", string(dls[0].Data))
				require.Equal(t, "http://x/0", dls[0].URL)
				require.EqualValues(t, tt.wantCalls, dls[0].Attempts)
			}
			// The work queue is empty: acked and terminated messages are gone.
			s, err := r.js.Stream(context.Background(), "WORK")
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				info, err := s.Info(context.Background())
				return err == nil && info.State.Msgs == 0
			}, 15*time.Second, 10*time.Millisecond)
			st := run.Stats()
			require.Equal(t, tt.wantAcked, st.Acked.Load())
			require.Equal(t, tt.wantRetried, st.Retried.Load())
			require.EqualValues(t, tt.wantDead, st.DeadLettered.Load())
		})
	}
}

func TestRunnerInProgressKeepsSlowHandler(t *testing.T) {
	r := newRig(t, 4, time.Second, 5)
	var calls atomic.Int64
	r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		calls.Add(1)
		time.Sleep(2500 * time.Millisecond) // 2.5 AckWaits
		return nil
	}), runner.Config{})
	r.publish(t, 2)
	require.Eventually(t, func() bool {
		ack, num := r.pending(t)
		return ack == 0 && num == 0
	}, 15*time.Second, 50*time.Millisecond)
	require.EqualValues(t, 2, calls.Load(), "a slow handler's message was redelivered")
}

func TestRunnerWindowNeverExceeded(t *testing.T) {
	const window = 4
	r := newRig(t, window, 5*time.Second, 5)
	var cur, peak, total atomic.Int64
	var maxAckPending atomic.Int64
	run, _ := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		n := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(30 * time.Millisecond)
		total.Add(1)
		return nil
	}), runner.Config{Workers: 64})
	r.publish(t, 60)
	require.Eventually(t, func() bool {
		ack, _ := r.pending(t)
		if int64(ack) > maxAckPending.Load() {
			maxAckPending.Store(int64(ack))
		}
		return total.Load() == 60
	}, 20*time.Second, 5*time.Millisecond)
	require.LessOrEqual(t, peak.Load(), int64(window))
	require.Greater(t, peak.Load(), int64(1), "workers should run concurrently")
	require.LessOrEqual(t, maxAckPending.Load(), int64(window))
	require.LessOrEqual(t, run.Stats().MaxInFlight.Load(), int64(window))
	require.Equal(t, window, run.Window())
}

func TestRunnerShutdownFinishesInFlight(t *testing.T) {
	r := newRig(t, 8, 30*time.Second, 5)
	started := make(chan struct{}, 8)
	var finished atomic.Int64
	_, stop := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		started <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		finished.Add(1)
		return nil
	}), runner.Config{Workers: 4})
	r.publish(t, 20)
	for range 4 {
		<-started
	}
	stop()
	require.GreaterOrEqual(t, finished.Load(), int64(4))
	r.requireHandedBack(t, 20-int(finished.Load()))
}

func TestRunnerShutdownCancelsAfterGrace(t *testing.T) {
	r := newRig(t, 8, 30*time.Second, 5)
	started := make(chan struct{}, 8)
	_, stop := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}), runner.Config{Workers: 2, Grace: 100 * time.Millisecond})
	r.publish(t, 2)
	<-started
	<-started
	stop()
	r.requireHandedBack(t, 2)
}

// A message handed back on its last allowed delivery is delivered again:
// the limit is the runner's, the server's is none, so shutting down never
// strands a message in its work stream.
func TestRunnerHandsBackOnLastDelivery(t *testing.T) {
	r := newRig(t, 4, 30*time.Second, 2)
	second := make(chan struct{})
	_, stop := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		if m.Delivered == 1 {
			return errors.New("connection reset")
		}
		close(second)
		<-ctx.Done()
		return ctx.Err()
	}), runner.Config{Grace: 100 * time.Millisecond})
	r.publish(t, 1)
	<-second
	stop()
	r.requireHandedBack(t, 1)
	r.deadLetters(t, 0)
}

// A handler that says its stage is stopping hands the message back, even
// on the last allowed delivery, and the delivery does not count as failed.
func TestRunnerStoppingHandsBack(t *testing.T) {
	r := newRig(t, 4, 30*time.Second, 1)
	run, _ := r.start(t, runner.HandlerFunc(func(ctx context.Context, m *runner.Msg) error {
		if m.Delivered == 1 {
			return fmt.Errorf("combine: %w", runner.ErrStopping)
		}
		return nil
	}), runner.Config{})
	r.publish(t, 1)
	require.Eventually(t, func() bool {
		ack, num := r.pending(t)
		return run.Stats().Acked.Load() == 1 && ack == 0 && num == 0
	}, 15*time.Second, 20*time.Millisecond)
	st := run.Stats()
	require.EqualValues(t, 1, st.HandedBack.Load())
	require.Zero(t, st.DeadLettered.Load())
	require.Zero(t, st.Retried.Load())
}

// A dead letter that cannot be published, on the last allowed delivery,
// leaves its message to be delivered and dead-lettered again.
func TestRunnerRetriesDeadLetter(t *testing.T) {
	r := newRig(t, 4, 30*time.Second, 1)
	ctx := context.Background()
	require.NoError(t, r.js.DeleteStream(ctx, topology.StreamDLQ))
	var calls atomic.Int64
	r.start(t, runner.HandlerFunc(func(context.Context, *runner.Msg) error {
		calls.Add(1)
		return runner.Permanent(errors.New("404 not found"))
	}), runner.Config{BackoffMax: 50 * time.Millisecond})
	r.publish(t, 1)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, 15*time.Second, 10*time.Millisecond,
		"a dead letter that was not published must be tried again")
	_, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: topology.StreamDLQ, Subjects: []string{topology.SubjectDLQ + ".>"}})
	require.NoError(t, err)
	dls := r.deadLetters(t, 1)
	require.Equal(t, "404 not found", dls[0].Error)
	require.Eventually(t, func() bool {
		ack, num := r.pending(t)
		return ack == 0 && num == 0
	}, 15*time.Second, 10*time.Millisecond)
}

// A message whose deliveries end without an outcome, as when the process
// handling it crashes on it, is dead-lettered unhandled once it is far past
// its limit, instead of crashing member after member for good.
func TestRunnerDeadLettersWhatCrashesItsMembers(t *testing.T) {
	r := newRig(t, 4, time.Second, 2)
	r.publish(t, 1)
	for range 4 { // four members that died holding it
		batch, err := r.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		got := 0
		for range batch.Messages() {
			got++
		}
		require.Equal(t, 1, got)
	}
	var calls atomic.Int64
	run, _ := r.start(t, runner.HandlerFunc(func(context.Context, *runner.Msg) error {
		calls.Add(1)
		return nil
	}), runner.Config{})
	dls := r.deadLetters(t, 1)
	require.Equal(t, "delivered 5 times (limit 2), mostly without an outcome: a stage process may have crashed handling it", dls[0].Error)
	require.Zero(t, calls.Load(), "the handler must not see it again")
	require.EqualValues(t, 1, run.Stats().DeadLettered.Load())
}

// A dead letter too large to publish keeps everything but the message, and
// says so: it is published once, not retried for good.
func TestRunnerDeadLetterTooLarge(t *testing.T) {
	r := newRig(t, 4, 30*time.Second, 5)
	big := make([]byte, r.js.Conn().MaxPayload()-200)
	_, err := r.js.Publish(context.Background(), "work.ds", big)
	require.NoError(t, err)
	var calls atomic.Int64
	r.start(t, runner.HandlerFunc(func(context.Context, *runner.Msg) error {
		calls.Add(1)
		return runner.Permanent(errors.New("malformed"))
	}), runner.Config{})
	dls := r.deadLetters(t, 1)
	require.Empty(t, dls[0].Data)
	require.Equal(t, len(big), dls[0].DataOmitted)
	require.Equal(t, fmt.Sprintf("malformed (the %d-byte message was too large to keep in a dead letter)", len(big)), dls[0].Error)
	require.Eventually(t, func() bool {
		ack, num := r.pending(t)
		return ack == 0 && num == 0
	}, 15*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 1, calls.Load())
}
