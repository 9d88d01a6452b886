package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// With the combine stage stopped and small stream limits, fetch and
// transform stop at their windows and hold their input (no retry used up,
// nothing dead-lettered); producers are told "pipeline full, retry later"
// (HTTP 503 with Retry-After; publish exits 75); memory stays flat while
// the backlog grows tenfold. Once a combine member runs, everything
// drains and every record is there exactly once.
func TestBackpressureToProducers(t *testing.T) {
	const first, backlog, rows = 20, 200, 50
	const n = first + backlog
	src := newFlakySource(t, rows, 0, nil)
	out := t.TempDir()
	limits := []string{
		"--sources-max-msgs", strconv.Itoa(n), "--fetched-max-msgs", "3", "--records-max-msgs", "3",
		"--fetch-window", "4", "--transform-window", "2", "--combine-window", "64",
	}
	a := startServe(t, append([]string{"--out", out, "--format", "jsonl", "--stages", "fetch,transform", "--retry-after", "7s"}, limits...)...)

	resp, body := a.postSources(t, src.jsonSources(0, first))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	nc, err := nats.Connect(a.nats)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	var st *metrics.State
	held := func() bool {
		st, err = metrics.ReadState(context.Background(), js)
		require.NoError(t, err)
		return streamMsgs(st, topology.StreamRecords) == 3 && streamMsgs(st, topology.StreamFetched) == 3 &&
			st.Stage("fetch").AckPending == 4 && st.Stage("transform").AckPending == 2
	}
	require.Eventually(t, held, 15*time.Second, 50*time.Millisecond, "state: %+v", st)
	time.Sleep(500 * time.Millisecond)
	rssHeld := a.rss(t)
	hitsHeld := src.hits.Load()

	// Ten times the backlog: the stages still hold only their windows.
	for k := first; k < n; k += 100 {
		resp, body := a.postSources(t, src.jsonSources(k, min(k+100, n)))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	}
	resp, body = a.postSources(t, src.jsonSources(n, n+2))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.Equal(t, "7", resp.Header.Get("Retry-After"))
	require.Equal(t, "pipeline full, retry later", body["error"])
	require.Empty(t, body["sources"])

	_, stderr, code := tf(t, "publish", "--nats", a.nats, "--retry-for", "0", "--id", "late", src.url(n))
	require.Equal(t, exitFull, code, stderr)
	require.Contains(t, stderr, "pipeline full, retry later")

	// The stages still hold at their windows, and memory has not grown with the backlog.
	time.Sleep(2 * time.Second) // long enough for retries, were any made
	require.True(t, held(), "state: %+v", st)
	require.Equal(t, hitsHeld, src.hits.Load(), "a held source was downloaded again")
	rssBacklog := a.rss(t)
	t.Logf("RSS holding %d sources: %.1f MiB; holding %d: %.1f MiB", first, float64(rssHeld)/(1<<20), n, float64(rssBacklog)/(1<<20))
	require.Less(t, rssBacklog, rssHeld+16<<20, "memory grew with the backlog")
	st, err = metrics.ReadState(context.Background(), js)
	require.NoError(t, err)
	for _, s := range st.Stages[:2] {
		require.LessOrEqual(t, s.AckPending, s.Window, s.Stage)
		require.Zero(t, s.Redelivered, "%s redelivered: holding must not use up attempts", s.Stage)
		require.Zero(t, s.DLQ, s.Stage)
	}
	require.Equal(t, uint64(3), streamMsgs(st, topology.StreamRecords))
	m := a.get(t, "/metrics")
	require.Regexp(t, `(?m)^trainfeed_stage_messages_retried_total\{stage="fetch"\} 0$`, m)
	require.Regexp(t, `(?m)^trainfeed_stage_messages_retried_total\{stage="transform"\} 0$`, m)
	require.Regexp(t, `(?m)^trainfeed_stage_in_flight\{stage="transform"\} 2$`, m)
	status, _, code := tf(t, "status", "--nats", a.nats, "--interval", "100ms")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^TRAINFEED_RECORDS\s+3\s+3\s+.*FULL$`, status)
	require.Regexp(t, `(?m)^TRAINFEED_SOURCES\s+`+strconv.Itoa(n)+`\s+`+strconv.Itoa(n)+`\s+.*FULL$`, status)

	// A combine member joins on A's NATS: everything drains, nothing is lost.
	b := startServe(t, append([]string{"--nats", a.nats, "--out", out, "--format", "jsonl", "--stages", "combine",
		"--max-age", "50ms"}, limits...)...)
	waitRecords(t, out, "default", n*rows, 60*time.Second)
	require.Empty(t, dlqEntries(t, a.nats))
	m = a.get(t, "/metrics")
	for _, stage := range []string{"fetch", "transform"} {
		require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_stage_messages_acked_total\{stage="%s"\} %d$`, stage, n), m)
		require.Regexp(t, regexp.MustCompile(fmt.Sprintf(`(?m)^trainfeed_stage_messages_dead_lettered_total\{stage="%s"\} 0$`, stage)), m)
	}
	b.stop(t, 15*time.Second)
	a.stop(t, 15*time.Second)
}

func streamMsgs(st *metrics.State, name string) uint64 {
	for _, s := range st.Streams {
		if s.Stream == name {
			return s.Messages
		}
	}
	return 0
}

// rss returns the serve process's resident memory as its /metrics reports it.
func (p *serveProc) rss(t *testing.T) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^process_resident_memory_bytes ([0-9.e+]+)$`).FindStringSubmatch(p.get(t, "/metrics"))
	require.NotNil(t, m, "no process_resident_memory_bytes in /metrics")
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}
