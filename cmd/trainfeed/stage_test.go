package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
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

// stageProc is a trainfeed process started by a test: a stage member or a
// one-shot command.
type stageProc struct {
	name string
	cmd  *exec.Cmd
	out  *proctest.Buffer // stdout and stderr
	done chan struct{}
	err  error
}

// startProc starts the trainfeed binary with args and env added to the
// test's environment. It is killed when the test ends; its output is
// printed if the test failed.
func startProc(t *testing.T, name string, env []string, args ...string) *stageProc {
	t.Helper()
	p := &stageProc{name: name, out: &proctest.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- %s ---\n%s", name, p.out.String())
		}
	})
	return p
}

// wait waits until the process exits and returns its exit code (-1: it
// did not exit in time and was killed).
func (p *stageProc) wait(within time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// stop sends SIGTERM and returns the exit code.
func (p *stageProc) stop(within time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(within)
}

func (p *stageProc) waitOutput(t *testing.T, substr string, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(p.out.String(), substr) }, within, 20*time.Millisecond,
		"%s never printed %q:\n%s", p.name, substr, p.out.String())
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
	members := []*stageProc{
		startProc(t, "fetch-1", nil, "fetch", "--nats", url, "--allow-private"),
		startProc(t, "fetch-2", nil, "fetch", "--nats", url, "--allow-private"),
		startProc(t, "transform-1", nil, "transform", "--nats", url),
		startProc(t, "transform-2", nil, "transform", "--nats", url),
		startProc(t, "combine", []string{"TRAINFEED_NATS_URL=" + url}, "combine", "--out", out, "--max-age", "200ms"),
	}
	for _, m := range members {
		m.waitOutput(t, "member of consumer", 20*time.Second)
	}
	// A single server: one replica, whatever the members asked for.
	_, js := natstest.Connect(t, ns)
	s, err := js.Stream(context.Background(), topology.StreamRecords)
	require.NoError(t, err)
	assert.Equal(t, 1, s.CachedInfo().Config.Replicas)

	pub := startProc(t, "publish", nil, "publish", "--nats", url, "--dataset", "ds", "--sources", sources)
	require.Equal(t, 0, pub.wait(30*time.Second), pub.out.String())
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
		assert.Equal(t, 0, m.stop(20*time.Second), "%s on SIGTERM:\n%s", m.name, m.out.String())
		assert.Contains(t, m.out.String(), ": stopped:", m.name)
	}
	// Both members of a stage took part.
	for _, m := range members[:4] {
		assert.NotContains(t, m.out.String(), "stopped: 0 acked", "%s did no work", m.name)
	}
}

// A member told not to manage the topology waits for it, then joins.
func TestStageWaitsForTopology(t *testing.T) {
	ns := natstest.Server(t)
	url := ns.ClientURL()
	m := startProc(t, "transform", nil, "transform", "--nats", url, "--ensure-topology=false")
	m.waitOutput(t, "waiting for the topology", 10*time.Second)
	setup := startProc(t, "setup", nil, "setup", "--nats", url)
	require.Equal(t, 0, setup.wait(30*time.Second), setup.out.String())
	assert.Contains(t, setup.out.String(), topology.StreamRecords)
	m.waitOutput(t, "member of consumer \"transform\"", 10*time.Second)
	assert.Equal(t, 0, m.stop(10*time.Second), m.out.String())
}

func TestStageFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"combine", "--nats", "nats://127.0.0.1:1"}, "--out is required"},
		{[]string{"combine", "--nats", "nats://127.0.0.1:1", "--out", "x", "--format", "xml"}, "--format"},
		{[]string{"fetch"}, "no server URL"},
		{[]string{"transform", "--nats", "nats://127.0.0.1:1", "--token", "a", "--user", "b"}, "use one of"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			p := startProc(t, tc.args[0], []string{"TRAINFEED_NATS_URL="}, tc.args...)
			assert.Equal(t, 2, p.wait(10*time.Second))
			assert.Contains(t, p.out.String(), tc.want)
		})
	}
}
