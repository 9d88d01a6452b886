package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/topology"
)

func TestStreamLimits(t *testing.T) {
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx := context.Background()
	cfg := topology.DefaultConfig()
	cfg.Sources = topology.Limits{MaxMsgs: 2, MaxAge: time.Hour}
	cfg.Fetched = topology.Limits{MaxMsgs: 3, MaxBytes: 1 << 20}
	cfg.Records = topology.Limits{MaxBytes: 2 << 20}
	cfg.DLQ = topology.Limits{MaxAge: 24 * time.Hour}
	_, err := topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)

	for _, tt := range []struct {
		stream   string
		msgs     int64
		bytes    int64
		age      time.Duration
		discards jetstream.DiscardPolicy
	}{
		{topology.StreamSources, 2, cfg.MaxBytes, time.Hour, jetstream.DiscardNew},
		{topology.StreamFetched, 3, 1 << 20, 0, jetstream.DiscardNew},
		{topology.StreamRecords, -1, 2 << 20, 0, jetstream.DiscardNew},
		{topology.StreamDLQ, -1, -1, 24 * time.Hour, jetstream.DiscardNew},
	} {
		s, err := js.Stream(ctx, tt.stream)
		require.NoError(t, err)
		c := s.CachedInfo().Config
		require.Equal(t, tt.msgs, c.MaxMsgs, tt.stream)
		require.Equal(t, tt.bytes, c.MaxBytes, tt.stream)
		require.Equal(t, tt.age, c.MaxAge, tt.stream)
		require.Equal(t, tt.discards, c.Discard, tt.stream)
	}

	// A full stream refuses, and IsFull says so.
	for i := range 3 {
		_, err := js.Publish(ctx, "trainfeed.sources.ds", []byte{'a' + byte(i)})
		if i < 2 {
			require.NoError(t, err)
			continue
		}
		require.Error(t, err)
		require.True(t, topology.IsFull(err), "%v", err)
	}

	// Defaults again: the limits go away (every process applies its own).
	_, err = topology.Ensure(ctx, js, topology.DefaultConfig())
	require.NoError(t, err)
	s, err := js.Stream(ctx, topology.StreamSources)
	require.NoError(t, err)
	require.EqualValues(t, -1, s.CachedInfo().Config.MaxMsgs)
	require.Equal(t, topology.DefaultSourcesMaxAge, s.CachedInfo().Config.MaxAge)
}

func TestLimitsValidate(t *testing.T) {
	for name, mod := range map[string]func(*topology.Config){
		"negative msgs":      func(c *topology.Config) { c.Sources.MaxMsgs = -1 },
		"negative bytes":     func(c *topology.Config) { c.Records.MaxBytes = -5 },
		"age on work stream": func(c *topology.Config) { c.Fetched.MaxAge = time.Hour },
	} {
		c := topology.DefaultConfig()
		mod(&c)
		require.Error(t, c.Validate(), name)
	}
	require.NoError(t, topology.DefaultConfig().Validate())
}
