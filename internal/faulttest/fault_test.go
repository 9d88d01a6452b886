package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/cluster"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

const (
	sourceCount  = 300
	rowsPer      = 1000
	faultDataset = "ds"
)

// TestKill9MidRun runs the pipeline on three clustered nats-server processes
// with fetch ×2, transform ×2 and combine ×1 as trainfeed processes, publishes
// 300 sources of 1,000 rows with trainfeed publish, and kills with SIGKILL a
// fetch member, a transform member and the server leading the combine
// consumer while the sources flow (the server comes back five seconds
// later). Every one of the 300,000 records must be in the dataset exactly
// once.
func TestKill9MidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: a 3-node cluster and 5 trainfeed processes")
	}
	began := time.Now()
	cl := cluster.StartProcesses(t, natsdBin, 3)
	urls := cl.URLs()
	srv, served := sourceServer(t, 150*time.Millisecond)
	out := t.TempDir()
	common := []string{"--nats", urls, "--ack-wait", "5s", "--log-level", "info"}
	args := func(a ...string) []string { return append(a, common...) }

	comb := start(t, "combine", args("combine", "--out", out, "--chunk-records", "10000", "--max-age", "1s")...)
	transforms := []*member{
		start(t, "transform-1", args("transform")...),
		start(t, "transform-2", args("transform")...),
	}
	// --timeout bounds a fetch whose publish lost its answer with the killed
	// server; the default (30 min) would hold that source for as long.
	fetches := []*member{
		start(t, "fetch-1", args("fetch", "--allow-hosts", "127.0.0.1", "--per-host", "4", "--timeout", "10s")...),
		start(t, "fetch-2", args("fetch", "--allow-hosts", "127.0.0.1", "--per-host", "4", "--timeout", "10s")...),
	}
	members := append([]*member{comb}, append(transforms, fetches...)...)

	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	waitTopology(t, js, members)
	t.Logf("cluster and members up after %s", time.Since(began).Round(time.Millisecond))

	pub := start(t, "publish", "publish", "--nats", urls, "--dataset", faultDataset, "--sources", sourcesFile(t, srv.URL))
	published := time.Now()

	// Kill one member of each scaled stage and one server while work flows
	// through all three stages; bring the server back after a while.
	var (
		killedFetch, killedTransform bool
		killedNode                   = -1
		killedNodeAt                 time.Time
	)
	deadline := published.Add(90 * time.Second) // a commit whose reply is lost holds combine 60s (docs/operations.md)
	var records int64
	report := time.Now()
	var quietSince time.Time
	for records < sourceCount*rowsPer {
		// Every consumer drained, yet records missing: they are lost, not late.
		if records > 0 && quiet(js) && committed(out) < sourceCount*rowsPer {
			if quietSince.IsZero() {
				quietSince = time.Now()
			} else if time.Since(quietSince) > 10*time.Second {
				t.Fatalf("%s: the pipeline is idle with %d of %d records; sources missing from the dataset: %v; dead letters: %v; consumers:\n%s",
					since(published), records, sourceCount*rowsPer, missingSources(t, out), deadLetters(js), consumerStates(js))
			}
		} else {
			quietSince = time.Time{}
		}
		if time.Since(report) > 5*time.Second {
			report = time.Now()
			t.Logf("%s: %d records committed; consumers:\n%s", since(published), records, consumerStates(js))
		}
		if time.Now().After(deadline) {
			states := consumerStates(js)
			for _, m := range members {
				m.dumpStacks()
			}
			t.Fatalf("only %d of %d records after %s; consumers:\n%s", records, sourceCount*rowsPer,
				time.Since(published).Round(time.Second), states)
		}
		for _, m := range members {
			killed := (m == fetches[0] && killedFetch) || (m == transforms[0] && killedTransform)
			require.False(t, !killed && m.exited(), "%s exited by itself: %v", m.name, m.err)
		}
		records = committed(out)
		n := served.Load()
		if !killedFetch && n >= 60 {
			fetches[0].kill()
			killedFetch = true
			t.Logf("%s: kill -9 fetch-1 (%d sources fetched, %d records committed)", since(published), n, records)
			require.Less(t, n, int64(sourceCount), "fetch was done before fetch-1 was killed")
		}
		if killedFetch && !killedTransform {
			if d := delivered(js, topology.StreamFetched, topology.ConsumerTransform); d >= 90 {
				transforms[0].kill()
				killedTransform = true
				t.Logf("%s: kill -9 transform-1 (%d bodies delivered to transform, %d records committed)", since(published), d, records)
				require.Less(t, d, uint64(sourceCount), "transform was done before transform-1 was killed")
			}
		}
		if killedTransform && killedNode < 0 && records >= 30_000 {
			killedNode = consumerLeader(t, js, cl, topology.StreamRecords, topology.ConsumerCombine)
			cl.Kill(killedNode)
			killedNodeAt = time.Now()
			t.Logf("%s: kill -9 nats-server %s, leader of the combine consumer (%d records committed)",
				since(published), cl.Nodes[killedNode].Name, records)
			require.Less(t, records, int64(sourceCount*rowsPer), "combine was done before the server was killed")
		}
		if killedNode >= 0 && !cl.Running(killedNode) && time.Since(killedNodeAt) > 5*time.Second {
			cl.Start(killedNode)
			t.Logf("%s: nats-server %s restarted", since(published), cl.Nodes[killedNode].Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s: all %d records committed", since(published), records)
	require.True(t, killedFetch && killedTransform && killedNode >= 0, "not every kill happened before the end")
	require.Equal(t, 0, pub.wait(10*time.Second), "trainfeed publish:\n%s", pub.output())
	require.Contains(t, pub.output(), srv.URL+"/src/299.csv")

	// Quiet: nothing pending or unacknowledged anywhere, and still exactly
	// the records published: no late duplicate commits.
	require.Eventually(t, func() bool { return quiet(js) }, 30*time.Second, 100*time.Millisecond,
		"the pipeline did not settle:\n%s", consumerStates(js))
	ids, m := datasettest.Read(t, out, faultDataset)
	assert.EqualValues(t, sourceCount*rowsPer, m.Records)
	require.Len(t, ids, sourceCount*rowsPer, "distinct record ids")
	for id := range int64(sourceCount * rowsPer) {
		if ids[id] != 1 {
			t.Fatalf("record %d is in the dataset %d times", id, ids[id])
		}
	}
	assert.Empty(t, deadLetters(js), "dead letters")

	// The survivors stop cleanly on SIGTERM.
	for _, m := range []*member{comb, transforms[1], fetches[1]} {
		assert.Equal(t, 0, m.stop(20*time.Second), "%s exit code on SIGTERM:\n%s", m.name, m.output())
		assert.Contains(t, m.output(), ": stopped:", m.name)
	}
	t.Logf("total %s (run %s)", since(began), since(published))
}

// sourceServer serves /src/<n>.csv: rows with ids n*1000 … n*1000+999, after
// delay, and counts the bodies it served in full.
func sourceServer(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/src/%d.csv", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "text/csv")
		bw := bufio.NewWriter(w)
		fmt.Fprintln(bw, "id,source,row,name")
		for i := range rowsPer {
			fmt.Fprintf(bw, "%d,%d,%d,name-%d\n", n*rowsPer+i, n, i, n*rowsPer+i)
		}
		if bw.Flush() == nil {
			served.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &served
}

func sourcesFile(t *testing.T, base string) string {
	t.Helper()
	var b strings.Builder
	for n := range sourceCount {
		fmt.Fprintf(&b, "%s/src/%d.csv\n", base, n)
	}
	path := filepath.Join(t.TempDir(), "sources.txt")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// waitTopology waits until the members have created every stream and
// consumer, and checks that, on this 3-node cluster, every stream and bucket
// has 3 replicas.
func waitTopology(t *testing.T, js jetstream.JetStream, members []*member) {
	t.Helper()
	ctx := context.Background()
	consumers := map[string]string{
		topology.ConsumerFetch: topology.StreamSources, topology.ConsumerTransform: topology.StreamFetched,
		topology.ConsumerCombine: topology.StreamRecords,
	}
	require.Eventually(t, func() bool {
		for _, m := range members {
			if m.exited() {
				return true // reported below
			}
		}
		for name, stream := range consumers {
			if _, err := js.Consumer(ctx, stream, name); err != nil {
				return false
			}
		}
		for _, m := range members {
			if !strings.Contains(m.output(), "member of consumer") {
				return false
			}
		}
		return true
	}, 45*time.Second, 100*time.Millisecond, "the members did not create the topology")
	for _, m := range members {
		require.False(t, m.exited(), "%s exited: %v\n%s", m.name, m.err, m.output())
	}
	for _, name := range []string{
		topology.StreamSources, topology.StreamFetched, topology.StreamRecords, topology.StreamChunks, topology.StreamDLQ,
		"OBJ_" + topology.BucketBodies, "OBJ_" + topology.BucketChunks, "KV_" + topology.BucketManifest, "KV_" + topology.BucketCache,
	} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err, name)
		require.Equal(t, 3, s.CachedInfo().Config.Replicas, "replicas of %s", name)
	}
}

// committed returns the records the dataset's manifest.json lists, 0 before
// the first commit.
func committed(out string) int64 {
	m, err := dataset.ReadManifest(out, faultDataset)
	if err != nil {
		return 0
	}
	return m.Records
}

// delivered returns how many messages a consumer has delivered, or 0 when
// the cluster does not answer.
func delivered(js jetstream.JetStream, stream, name string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return 0
	}
	return c.CachedInfo().Delivered.Consumer
}

// consumerLeader returns the index of the node leading a consumer.
func consumerLeader(t *testing.T, js jetstream.JetStream, cl *cluster.ProcessCluster, stream, name string) int {
	t.Helper()
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := js.Consumer(ctx, stream, name)
		cancel()
		if err == nil && c.CachedInfo().Cluster != nil {
			for i, n := range cl.Nodes {
				if n.Name == c.CachedInfo().Cluster.Leader {
					return i
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no leader for consumer %s", name)
	return -1
}

// quiet reports whether every stage consumer has nothing pending and nothing
// unacknowledged.
func quiet(js jetstream.JetStream) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, sc := range [][2]string{
		{topology.StreamSources, topology.ConsumerFetch},
		{topology.StreamFetched, topology.ConsumerTransform},
		{topology.StreamRecords, topology.ConsumerCombine},
	} {
		c, err := js.Consumer(ctx, sc[0], sc[1])
		if err != nil {
			return false
		}
		if info := c.CachedInfo(); info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
	}
	return true
}

func consumerStates(js jetstream.JetStream) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var b strings.Builder
	for _, sc := range [][2]string{
		{topology.StreamSources, topology.ConsumerFetch},
		{topology.StreamFetched, topology.ConsumerTransform},
		{topology.StreamRecords, topology.ConsumerCombine},
	} {
		c, err := js.Consumer(ctx, sc[0], sc[1])
		if err != nil {
			fmt.Fprintf(&b, "  %s: %v\n", sc[1], err)
			continue
		}
		i := c.CachedInfo()
		fmt.Fprintf(&b, "  %s: delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d, waiting %d\n",
			sc[1], i.Delivered.Consumer, i.AckFloor.Consumer, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting)
	}
	return b.String()
}

// missingSources returns the sources none of whose rows is in the dataset,
// and those only partly there (as "n(rows)").
func missingSources(t *testing.T, out string) []string {
	t.Helper()
	ids, _ := datasettest.Read(t, out, faultDataset)
	rows := make([]int, sourceCount)
	for id := range ids {
		if n := int(id) / rowsPer; n >= 0 && n < sourceCount {
			rows[n]++
		}
	}
	var missing []string
	for n, r := range rows {
		switch {
		case r == 0:
			missing = append(missing, fmt.Sprint(n))
		case r < rowsPer:
			missing = append(missing, fmt.Sprintf("%d(%d)", n, r))
		}
	}
	return missing
}

// deadLetters returns the dead letters, as "stage url: error".
func deadLetters(js jetstream.JetStream) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var dl wire.DeadLetter
		if err := wire.Decode(m.Data, &dl); err != nil {
			out = append(out, err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("%s %s: %s", dl.Stage, dl.URL, dl.Error))
	}
	return out
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
