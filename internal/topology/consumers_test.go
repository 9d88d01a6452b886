package topology_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// Stage consumers redeliver without a server limit and carry the runner's
// limit in their metadata; Ensure moves a consumer made with a server limit
// (by an older trainfeed) over to that.
func TestConsumersDeliverWithoutServerLimit(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	cfg := topology.DefaultConfig()
	_, err := topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(ctx, topology.StreamSources, jetstream.ConsumerConfig{
		Durable: topology.ConsumerFetch, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 6,
		AckWait: cfg.Fetch.AckWait, MaxAckPending: cfg.Fetch.MaxAckPending, MaxWaiting: 512,
	})
	require.NoError(t, err)

	top, err := topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)
	for _, tt := range []struct {
		cons jetstream.Consumer
		want int
	}{{top.Fetch, 6}, {top.Transform, 5}, {top.Combine, 10}} {
		info, err := tt.cons.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, -1, info.Config.MaxDeliver, info.Name)
		require.Equal(t, tt.want, topology.MaxDeliverOf(info.Config), info.Name)
	}
	require.Equal(t, 3, topology.MaxDeliverOf(jetstream.ConsumerConfig{MaxDeliver: 3}), "a consumer trainfeed did not make")
	require.Zero(t, topology.MaxDeliverOf(jetstream.ConsumerConfig{MaxDeliver: -1}))
}
