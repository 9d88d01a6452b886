package runner_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/cluster"
	"github.com/trainfeed/trainfeed/internal/runner"
)

// seen records the payloads a handler was given, and when.
type seen struct {
	mu    sync.Mutex
	count map[string]int
	last  time.Time
}

func (s *seen) handler() runner.Handler {
	return runner.HandlerFunc(func(_ context.Context, m *runner.Msg) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.count[string(m.Data)]++
		s.last = time.Now()
		return nil
	})
}

func (s *seen) has(payload string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[payload] > 0
}

// A pull the server ends for good (409 Consumer Deleted) must not leave the
// member idle: once the consumer exists again, the runner pulls from it.
func TestRunnerPullsAgainAfterConsumerRecreated(t *testing.T) {
	r := newRig(t, 16, 5*time.Second, 5)
	s := &seen{count: map[string]int{}}
	run, _ := r.start(t, s.handler(), runner.Config{})
	r.publish(t, 1) // payload "0"
	require.Eventually(t, func() bool { return s.has("0") }, 15*time.Second, 10*time.Millisecond)

	ctx := context.Background()
	info := r.cons.CachedInfo()
	require.NoError(t, r.js.DeleteConsumer(ctx, "WORK", info.Name))
	require.Eventually(t, func() bool { return run.Stats().Repulls.Load() > 0 }, 15*time.Second, 10*time.Millisecond,
		"the runner did not notice that the server ended its pull")
	_, err := r.js.CreateOrUpdateConsumer(ctx, "WORK", info.Config)
	require.NoError(t, err)
	_, err = r.js.Publish(ctx, "work.ds", []byte("after"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.has("after") }, 15*time.Second, 20*time.Millisecond,
		"the runner stopped pulling after its consumer was recreated")
}

// Through consumer leader step-downs and the loss and return of the server
// leading the consumer, a runner on a 3-node cluster keeps pulling: every
// message is handled, and handling resumes within seconds of each event.
func TestRunnerThroughLeaderChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := cluster.InProcess(t, 3)
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"},
		Retention: jetstream.WorkQueuePolicy, Replicas: 3})
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(ctx, "WORK", jetstream.ConsumerConfig{Durable: "w",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 64, AckWait: 5 * time.Second})
	require.NoError(t, err)
	s := &seen{count: map[string]int{}}
	rn, err := runner.New(js, cons, s.handler(), runner.Config{Stage: "test"})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rn.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// The publisher has a connection of its own, so its retries do not hide
	// the runner's.
	pc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(pc.Close)
	pjs, err := jetstream.New(pc)
	require.NoError(t, err)
	n := 0
	publish := func() string {
		payload := fmt.Sprint(n)
		n++
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := pjs.Publish(pctx, "work.ds", []byte(payload), jetstream.WithMsgID(payload))
			pcancel()
			if err == nil {
				return payload
			}
		}
	}
	// resumes publishes one message and requires the runner to handle it in time.
	resumes := func(event string, within time.Duration) {
		t.Helper()
		start := time.Now()
		p := publish()
		ok := assert.Eventually(t, func() bool { return s.has(p) }, within, 10*time.Millisecond,
			"no message handled within %s after %s", within, event)
		t.Logf("%s: handling resumed after %s", event, time.Since(start).Round(time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}
	leader := func() int {
		for {
			info, err := cons.Info(ctx)
			if err == nil && info.Cluster != nil {
				for i, nd := range c.Nodes {
					if nd.Name == info.Cluster.Leader && c.Servers[i] != nil {
						return i
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	resumes("start", 5*time.Second)
	for range 3 {
		_, err := nc.Request("$JS.API.CONSUMER.LEADER.STEPDOWN.WORK.w", nil, 5*time.Second)
		require.NoError(t, err)
		resumes("consumer leader step-down", 5*time.Second)
	}
	l := leader()
	c.Shutdown(l)
	resumes("loss of the consumer leader's server", 15*time.Second)
	c.Restart(l)
	resumes("its return", 15*time.Second)
	for range 200 {
		publish()
	}
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.count) == n
	}, 15*time.Second, 20*time.Millisecond, "not every message was handled")
}
