package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/proctest"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// startProc starts the trainfeed binary with args and env added to the
// test's environment (see proctest.Start).
func startProc(t *testing.T, name string, env []string, args ...string) *proctest.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return proctest.Start(t, name, cmd, nil)
}

// The stage commands are members of their consumer groups on an external
// NATS: together they turn published sources into the dataset, with two
// members of each of fetch and transform, and each stops cleanly on SIGTERM.
func TestStageMembers(t *testing.T) {
	const n, rows = 30, 200
	ns := natstest.Server(t)
	url := ns.ClientURL()
	sources := csvSources(t, n, rows, func(int) time.Duration { return 20 * time.Millisecond })
	out := t.TempDir()
	members := []*proctest.Proc{
		startProc(t, "fetch-1", nil, "fetch", "--nats", url, "--allow-private"),
		startProc(t, "fetch-2", nil, "fetch", "--nats", url, "--allow-private"),
		startProc(t, "transform-1", nil, "transform", "--nats", url),
		startProc(t, "transform-2", nil, "transform", "--nats", url),
		startProc(t, "combine", []string{"TRAINFEED_NATS_URL=" + url}, "combine", "--out", out, "--max-age", "200ms"),
	}
	for _, m := range members {
		m.WaitOutput(t, "member of consumer", 20*time.Second)
	}
	// A single server: one replica, whatever the members asked for.
	_, js := natstest.Connect(t, ns)
	s, err := js.Stream(context.Background(), topology.StreamRecords)
	require.NoError(t, err)
	assert.Equal(t, 1, s.CachedInfo().Config.Replicas)

	pub := startProc(t, "publish", nil, "publish", "--nats", url, "--dataset", "ds", "--sources", sources)
	require.Equal(t, 0, pub.Wait(30*time.Second), pub.Output())
	require.Eventually(t, func() bool {
		m, err := dataset.ReadManifest(out, "ds")
		return err == nil && m.Records >= n*rows
	}, 30*time.Second, 50*time.Millisecond, "the dataset never got its records")
	ids, m := datasettest.ReadAll(t, out, "ds")
	require.EqualValues(t, n*rows, m.Records)
	for id := range int64(n * rows) {
		require.Equal(t, 1, ids[id], "record %d", id)
	}

	for _, m := range members {
		assert.Equal(t, 0, m.Stop(20*time.Second), "%s on SIGTERM:\n%s", m.Name, m.Output())
		assert.Contains(t, m.Output(), ": stopped:", m.Name)
	}
	// Both members of a stage took part.
	for _, m := range members[:4] {
		assert.NotContains(t, m.Output(), "stopped: 0 acked", "%s did no work", m.Name)
	}
}

// A member told not to manage the topology waits for it, then joins.
func TestStageWaitsForTopology(t *testing.T) {
	ns := natstest.Server(t)
	url := ns.ClientURL()
	m := startProc(t, "transform", nil, "transform", "--nats", url, "--ensure-topology=false")
	m.WaitOutput(t, "waiting for the topology", 10*time.Second)
	setup := startProc(t, "setup", nil, "setup", "--nats", url)
	require.Equal(t, 0, setup.Wait(30*time.Second), setup.Output())
	assert.Contains(t, setup.Output(), topology.StreamRecords)
	m.WaitOutput(t, "member of consumer \"transform\"", 10*time.Second)
	assert.Equal(t, 0, m.Stop(10*time.Second), m.Output())
}

func TestStageFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"combine", "--nats", "nats://127.0.0.1:1"}, "--out is required"},
		{[]string{"combine", "--nats", "nats://127.0.0.1:1", "--out", "x", "--format", "xml"}, "--format"},
		{[]string{"combine", "--nats", "nats://127.0.0.1:1", "--out", "x", "--chunk-bytes", "0"}, "--chunk-bytes 0 must be positive"},
		{[]string{"combine", "--nats", "nats://127.0.0.1:1", "--out", "x", "--chunk-bytes", "lots"}, "--chunk-bytes"},
		{[]string{"fetch"}, "no server URL"},
		{[]string{"transform", "--nats", "nats://127.0.0.1:1", "--token", "a", "--user", "b"}, "use one of"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			p := startProc(t, tc.args[0], []string{"TRAINFEED_NATS_URL="}, tc.args...)
			assert.Equal(t, 2, p.Wait(10*time.Second))
			assert.Contains(t, p.Output(), tc.want)
		})
	}
}
