package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/proctest"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// docConfig returns the nats-server configuration block of docs/security.md:
// the first ```conf fence.
func docConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../docs/security.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(data), "\n```conf\n")
	require.True(t, ok, "docs/security.md has no ```conf block")
	conf, _, ok := strings.Cut(rest, "\n```")
	require.True(t, ok, "unterminated ```conf block")
	return conf
}

var docUsers = []string{"admin", "publisher", "fetch", "transform", "combine"}

func docPassword(user string) string { return "pw-of-" + user + "-6c1e" }

// docServer starts an in-process nats-server from the configuration in
// docs/security.md, its passwords from the environment as the document
// says, on a loopback port and a test store folder.
func docServer(t *testing.T) string {
	t.Helper()
	for _, u := range docUsers {
		t.Setenv("TRAINFEED_"+strings.ToUpper(u)+"_PASSWORD", docPassword(u))
	}
	path := filepath.Join(t.TempDir(), "nats-server.conf")
	require.NoError(t, os.WriteFile(path, []byte(docConfig(t)), 0o600))
	opts, err := server.ProcessConfigFile(path)
	require.NoError(t, err, "the configuration in docs/security.md")
	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", -1, t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	return natstest.ServerWith(t, opts).ClientURL()
}

// as returns the environment that makes trainfeed connect as user.
func as(user string) []string {
	return []string{"TRAINFEED_NATS_USER=" + user, "TRAINFEED_NATS_PASSWORD=" + docPassword(user)}
}

// The least-privilege account of docs/security.md, as written, runs the
// pipeline: admin creates the topology, each stage runs as its own user
// without managing streams, the publisher publishes, and the sources reach
// the dataset with no permission violation anywhere. The limits hold too.
func TestSecurityDocAccount(t *testing.T) {
	const n, rows = 12, 100
	url := docServer(t)
	sources := csvSources(t, n, rows, func(int) time.Duration { return 0 })
	out := t.TempDir()

	// A member may start first: it waits for the topology.
	fetch := startProc(t, "fetch", as("fetch"), "fetch", "--nats", url, "--ensure-topology=false", "--allow-private")
	fetch.WaitOutput(t, "waiting for the topology", 10*time.Second)
	setup := startProc(t, "setup", as("admin"), "setup", "--nats", url)
	require.Equal(t, 0, setup.Wait(30*time.Second), setup.Output())
	members := []*proctest.Proc{
		fetch,
		startProc(t, "transform", as("transform"), "transform", "--nats", url, "--ensure-topology=false"),
		startProc(t, "combine", as("combine"), "combine", "--nats", url, "--ensure-topology=false", "--out", out, "--max-age", "200ms"),
	}
	for _, m := range members {
		m.WaitOutput(t, "member of consumer", 20*time.Second)
	}
	pub := startProc(t, "publish", as("publisher"), "publish", "--nats", url, "--dataset", "ds", "--sources", sources)
	require.Equal(t, 0, pub.Wait(30*time.Second), pub.Output())
	// A body over 1 MiB, which transform streams through an ordered
	// consumer instead of reading it with direct gets.
	const bigRows = 60_000
	big := startProc(t, "publish-big", as("publisher"), "publish", "--nats", url, "--dataset", "big",
		"--sources", csvSources(t, 1, bigRows, func(int) time.Duration { return 0 }))
	require.Equal(t, 0, big.Wait(30*time.Second), big.Output())
	for ds, want := range map[string]int64{"ds": n * rows, "big": bigRows} {
		require.Eventually(t, func() bool {
			m, err := dataset.ReadManifest(out, ds)
			return err == nil && m.Records == want
		}, 30*time.Second, 50*time.Millisecond, "the sources of %s did not reach the dataset", ds)
		ids, _ := datasettest.ReadAll(t, out, ds)
		require.Len(t, ids, int(want))
	}

	// A second combine member with its own folder copies the chunks the
	// first committed: it needs to read the chunks object store and watch
	// the manifest.
	out2 := t.TempDir()
	// combine restores chunks only into an existing dataset folder (a
	// member starting with an empty --out fails: consumers/combine
	// download needs a MkdirAll); this test is about permissions.
	for _, ds := range []string{"ds", "big"} {
		require.NoError(t, os.MkdirAll(filepath.Join(out2, ds), 0o755))
	}
	combine2 := startProc(t, "combine-2", as("combine"), "combine", "--nats", url, "--ensure-topology=false", "--out", out2)
	combine2.WaitOutput(t, "member of consumer", 20*time.Second)
	require.Eventually(t, func() bool {
		m, err := dataset.ReadManifest(out2, "ds")
		return err == nil && m.Records == n*rows
	}, 30*time.Second, 50*time.Millisecond, "the second combine member did not mirror the dataset")

	for _, m := range append(members, combine2, setup, pub, big) {
		m.Stop(10 * time.Second)
		assert.NotContains(t, strings.ToLower(m.Output()), "permissions violation", m.Name)
	}

	t.Run("combine sweeps chunk objects", func(t *testing.T) {
		// What combine's sweep of uploads no commit lists does (it runs a
		// minute after start, after this test), as the combine user.
		nc, err := nats.Connect(url, nats.UserInfo("combine", docPassword("combine")))
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		obs, err := js.ObjectStore(ctx, topology.BucketChunks)
		require.NoError(t, err)
		const name = "ds/orphan.jsonl"
		_, err = obs.PutBytes(ctx, name, []byte("{}\n"))
		require.NoError(t, err)
		infos, err := obs.List(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, infos)
		_, err = obs.GetInfo(ctx, name)
		require.NoError(t, err)
		require.NoError(t, obs.Delete(ctx, name))
		_, err = obs.GetInfo(ctx, name)
		require.ErrorIs(t, err, jetstream.ErrObjectNotFound)
	})

	t.Run("limits", func(t *testing.T) {
		errs := make(chan error, 16)
		nc, err := nats.Connect(url, nats.UserInfo("fetch", docPassword("fetch")),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		require.NoError(t, err)
		defer nc.Close()
		denied := func(subject string) {
			t.Helper()
			require.NoError(t, nc.Publish(subject, []byte("x")))
			require.NoError(t, nc.Flush())
			select {
			case err := <-errs:
				require.ErrorIs(t, err, nats.ErrPermissionViolation)
				require.Contains(t, err.Error(), subject)
			case <-time.After(5 * time.Second):
				t.Fatalf("the fetch user published to %s", subject)
			}
		}
		denied("trainfeed.records.ds")
		denied("trainfeed.sources.ds")
		denied("$JS.API.STREAM.CREATE.MINE")
		denied("$JS.API.STREAM.DELETE." + topology.StreamRecords)
		denied("$JS.API.CONSUMER.MSG.NEXT." + topology.StreamFetched + "." + topology.ConsumerTransform)
		denied("$JS.API.CONSUMER.CREATE." + topology.StreamSources + ".fetch")

		// Through the JetStream API it is a failed request, never a stream.
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{"mine.>"}})
		require.Error(t, err)
		require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrPermissionViolation), "%v", err)

		// What it is allowed still works.
		require.NoError(t, nc.Publish("trainfeed.dlq.fetch.probe", nil))
		require.NoError(t, nc.Flush())
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "trainfeed.dlq.fetch.probe") {
				t.Fatalf("allowed publish refused: %v", err)
			}
		case <-time.After(200 * time.Millisecond):
		}
	})
}
