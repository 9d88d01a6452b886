package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/cluster"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// every stream trainfeed places, buckets included.
var allStreams = []string{
	topology.StreamSources, topology.StreamFetched, topology.StreamRecords, topology.StreamChunks, topology.StreamDLQ,
	"OBJ_" + topology.BucketBodies, "OBJ_" + topology.BucketChunks, "KV_" + topology.BucketManifest, "KV_" + topology.BucketCache,
}

func requireReplicas(t *testing.T, js jetstream.JetStream, want int) {
	t.Helper()
	for _, name := range allStreams {
		s, err := js.Stream(context.Background(), name)
		require.NoError(t, err, name)
		info := s.CachedInfo()
		assert.Equal(t, want, info.Config.Replicas, name)
		if want > 1 {
			require.NotNil(t, info.Cluster, name)
			assert.Len(t, info.Cluster.Replicas, want-1, "%s: peers besides the leader", name)
		}
	}
}

// On a real 3-node cluster the default is 3 replicas for every stream and
// bucket, and a process that asks for fewer does not shrink them.
func TestReplicasOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := cluster.InProcess(t, 3)
	nc, err := nats.Connect(c.Nodes[1].ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx := context.Background()
	require.Equal(t, 3, topology.ClusterSize(ctx, nc))
	require.Equal(t, 3, topology.ReplicasFor(ctx, nc))

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cfg := topology.DefaultConfig()
	cfg.Replicas = topology.ReplicasFor(ctx, nc)
	_, err = topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)
	requireReplicas(t, js, 3)

	cfg.Replicas = 1
	_, err = topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)
	requireReplicas(t, js, 3)
}

// A fresh cluster has no meta leader for a while: Ensure retries through it.
func TestEnsureWhileClusterForms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := cluster.StartInProcess(t, 3) // returns long before a meta leader exists
	nc, err := nats.Connect(c.URLs())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cfg := topology.DefaultConfig()
	cfg.Replicas = 3
	start := time.Now()
	_, err = topology.Ensure(context.Background(), js, cfg)
	require.NoError(t, err)
	t.Logf("ensured after %s", time.Since(start).Round(time.Millisecond))
	requireReplicas(t, js, 3)
}

func TestReplicasForSingleServer(t *testing.T) {
	ns := natstest.Server(t)
	nc, js := natstest.Connect(t, ns)
	ctx := context.Background()
	require.Equal(t, 1, topology.ClusterSize(ctx, nc))
	require.Equal(t, 1, topology.ReplicasFor(ctx, nc))

	// Three replicas are refused for good by a single server: Ensure says so
	// at once instead of retrying until ctx ends.
	cfg := topology.DefaultConfig()
	cfg.Replicas = 3
	_, err := topology.Ensure(ctx, js, cfg)
	require.ErrorContains(t, err, "non-clustered")
}

// Members that start together all ensure the topology at once. The cluster
// answers only one of several identical creates of a stream; the others
// must retry soon, not wait out a long timeout per stream.
func TestEnsureConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := cluster.InProcess(t, 3)
	cfg := topology.DefaultConfig()
	cfg.Replicas = 3
	start := time.Now()
	errs := make(chan error, 5)
	for i := range 5 {
		go func() {
			nc, err := nats.Connect(c.Nodes[i%3].ClientURL())
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs <- err
				return
			}
			_, err = topology.Ensure(context.Background(), js, cfg)
			errs <- err
		}()
	}
	for range 5 {
		require.NoError(t, <-errs)
	}
	took := time.Since(start)
	t.Logf("5 concurrent ensures took %s", took.Round(time.Millisecond))
	require.Less(t, took, 20*time.Second)
}
