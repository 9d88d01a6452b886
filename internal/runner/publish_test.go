package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
)

// A publish into a full stream is held, not failed: once the stream has
// room (here: purged when the publisher says it is full) it is stored, and
// one published again under the same id is stored once.
func TestPublishHoldsWhileFull(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := "sync"
		if async {
			name = "async"
		}
		t.Run(name, func(t *testing.T) {
			ns := natstest.Server(t)
			_, js := natstest.Connect(t, ns)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "OUT", Subjects: []string{"out.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew,
			})
			require.NoError(t, err)
			require.NoError(t, runner.Publish(ctx, js, "out.a", []byte("a"), "id-a", time.Second, nil))

			fulls := 0
			makeRoom := func(error) {
				fulls++
				require.NoError(t, s.Purge(ctx))
			}
			if async {
				p, err := runner.PublishAsync(js, "out.b", []byte("b"), "id-b")
				require.NoError(t, err)
				require.NoError(t, p.Wait(ctx, makeRoom))
			} else {
				require.NoError(t, runner.Publish(ctx, js, "out.b", []byte("b"), "id-b", time.Second, makeRoom))
			}
			require.Equal(t, 1, fulls, "the stream was full once")
			// The same id again: a duplicate, dropped.
			require.NoError(t, runner.Publish(ctx, js, "out.b", []byte("b"), "id-b", time.Second, nil))
			info, err := s.Info(ctx)
			require.NoError(t, err)
			require.EqualValues(t, 1, info.State.Msgs)
			msg, err := s.GetLastMsgForSubject(ctx, "out.b")
			require.NoError(t, err)
			require.Equal(t, "b", string(msg.Data))
		})
	}
}
