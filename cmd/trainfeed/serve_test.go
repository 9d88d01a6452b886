package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/metrics"
)

// Sources that keep failing land in the DLQ with their HTTP reason; once the
// endpoint works, `dlq replay --all` brings their records in exactly once
// and empties the DLQ; replaying the same payloads again adds nothing.
func TestServeDeadLettersAndReplay(t *testing.T) {
	const n, rows = 8, 50
	src := newFlakySource(t, rows, 0, map[int]int{5: http.StatusNotFound, 6: http.StatusForbidden, 7: http.StatusServiceUnavailable})
	out := t.TempDir()
	p := startServe(t, "--out", out, "--format", "jsonl", "--chunk-records", "100", "--max-age", "200ms")

	resp, body := p.postSources(t, src.jsonSources(0, n))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Len(t, body["sources"], n)

	// 404 and 403 fail at once; the 503 is retried (Retry-After: 1) until
	// the fetch stage gives up after its 6 deliveries.
	var entries []map[string]any
	require.Eventually(t, func() bool {
		entries = dlqEntries(t, p.nats)
		return len(entries) == 3
	}, 20*time.Second, 100*time.Millisecond, "dead letters: %v", entries)
	waitRecords(t, out, "default", 5*rows, 10*time.Second)

	table, stderr, code := tf(t, "dlq", "list", "--nats", p.nats, "--full")
	require.Equal(t, 0, code, stderr)
	t.Log("\n" + table)
	require.Regexp(t, `(?m)^ID\s+STAGE\s+DATASET\s+ATTEMPTS\s+AGE\s+URL\s+ERROR$`, table)
	require.Contains(t, table, src.url(5)+"  GET "+src.url(5)+": 404 Not Found")
	require.Contains(t, table, "403 Forbidden")
	require.Regexp(t, `fetch\s+default\s+6\s+.*gave up after 6 attempts: GET `+regexp.QuoteMeta(src.url(7))+`: 503 Service Unavailable`, table)

	// Filters, and show with the decoded payload.
	require.Len(t, dlqEntries(t, p.nats, "--stage", "fetch", "--dataset", "default"), 3)
	require.Empty(t, dlqEntries(t, p.nats, "--stage", "transform"))
	require.Empty(t, dlqEntries(t, p.nats, "--dataset", "other"))
	id := fmt.Sprint(entries[0]["id"])
	show, stderr, code := tf(t, "dlq", "show", id, "--nats", p.nats)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, show, "subject:        trainfeed.sources.default")
	require.Contains(t, show, `"url": "`+src.url(int(mustSourceK(t, entries[0]))))
	require.Contains(t, show, "Nats-Msg-Id: source/src-")
	showJSON, _, code := tf(t, "dlq", "show", id, "--json", "--nats", p.nats)
	require.Equal(t, 0, code)
	var shown struct {
		Data    []byte         `json:"data"`
		Subject string         `json:"subject"`
		Payload map[string]any `json:"payload"`
	}
	require.NoError(t, json.Unmarshal([]byte(showJSON), &shown))
	require.NotEmpty(t, shown.Data)

	// Replaying while the endpoint still fails dead-letters them again, as
	// new entries: nothing is lost.
	out1, stderr, code := tf(t, "dlq", "replay", id, "--nats", p.nats)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out1, "1 replayed, 0 left")
	require.Eventually(t, func() bool {
		e := dlqEntries(t, p.nats)
		return len(e) == 3 && fmt.Sprint(e[0]["id"]) != id
	}, 20*time.Second, 100*time.Millisecond)

	// The endpoint works again: replay everything, exactly once.
	src.broken.Store(false)
	out2, stderr, code := tf(t, "dlq", "replay", "--all", "--nats", p.nats)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out2, "3 replayed, 0 left")
	waitRecords(t, out, "default", n*rows, 15*time.Second)
	empty, _, _ := tf(t, "dlq", "list", "--nats", p.nats)
	require.Contains(t, empty, "(no dead letters)")

	// Replaying the same payload a second time adds nothing.
	nc, err := nats.Connect(p.nats)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.PublishMsg(context.Background(), &nats.Msg{Subject: shown.Subject, Data: shown.Data,
		Header: nats.Header{"Nats-Msg-Id": []string{"a-second-replay"}}})
	require.NoError(t, err)
	requireIdle(t, js)
	waitRecords(t, out, "default", n*rows, time.Second)
	out3, _, code := tf(t, "dlq", "replay", "--all", "--nats", p.nats)
	require.Equal(t, 0, code)
	require.Contains(t, out3, "0 replayed, 0 left")
	p.stop(t, 15*time.Second)
}

// mustSourceK reads k from a dead letter's URL ".../src/<k>.csv".
func mustSourceK(t *testing.T, e map[string]any) int64 {
	t.Helper()
	var k int64
	_, err := fmt.Sscanf(e["url"].(string)[strings.LastIndex(e["url"].(string), "/")+1:], "%d.csv", &k)
	require.NoError(t, err)
	return k
}

// requireIdle waits until every stage consumer has nothing pending or in flight.
func requireIdle(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := metrics.ReadState(context.Background(), js)
		if err != nil {
			return false
		}
		for _, s := range st.Stages {
			if s.Pending > 0 || s.AckPending > 0 {
				return false
			}
		}
		return true
	}, 15*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // a combine flush (--max-age) may still be committing
}

// A source published as JSON with the real NATS CLI (`nats pub`) becomes
// records; a malformed one is dead-lettered with its reason and
// stops nothing; /metrics has trainfeed series for the three stages;
// status shows them.
func TestServeNatsPubMetricsStatus(t *testing.T) {
	const rows = 40
	src := newFlakySource(t, rows, 0, nil)
	out := t.TempDir()
	p := startServe(t, "--out", out, "--format", "jsonl", "--max-age", "200ms")

	cli := natsCLI(t)
	natsRun := func(args ...string) string {
		b, err := exec.Command(cli, append([]string{"--server", p.nats}, args...)...).CombinedOutput()
		require.NoError(t, err, string(b))
		return string(b)
	}
	natsRun("pub", "trainfeed.sources.mydata", `{"url": "`+src.url(0)+`"}`)
	natsRun("pub", "trainfeed.sources.mydata", `{"url": "`+src.url(1)+`", "colour": "red"}`)
	for range 2 { // as docs/publishing.md shows: a repeat is a no-op
		natsRun("pub", "trainfeed.sources.mydata", `{"url": "`+src.url(2)+`", "id": "two"}`, "-H", "Nats-Msg-Id:source/two")
	}
	// nats req gets JetStream's acknowledgement.
	require.Contains(t, natsRun("req", "trainfeed.sources.mydata", `{"url": "`+src.url(4)+`", "id": "four"}`), `"stream":"TRAINFEED_SOURCES"`)
	require.Eventually(t, func() bool {
		ids, _ := datasetIDs(t, out, "mydata")
		return len(ids) == 3*rows
	}, 15*time.Second, 50*time.Millisecond)
	ids, _ := datasetIDs(t, out, "mydata")
	for _, id := range []int64{0, rows - 1, 2 * rows, 3*rows - 1, 4 * rows, 5*rows - 1} {
		require.Equal(t, 1, ids[id], "id %d", id)
	}
	var entries []map[string]any
	require.Eventually(t, func() bool {
		entries = dlqEntries(t, p.nats, "--dataset", "mydata")
		return len(entries) == 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, entries[0]["error"], "malformed source")
	require.Contains(t, entries[0]["error"], `unknown field "colour"`)

	// trainfeed publish: acknowledged, idempotent with --id.
	for range 2 {
		stdout, stderr, code := tf(t, "publish", "--nats", p.nats, "--dataset", "mydata", "--id", "three", src.url(3))
		require.Equal(t, 0, code, stderr)
		require.Equal(t, "three\tmydata\t"+src.url(3)+"\n", stdout)
	}
	require.Eventually(t, func() bool {
		ids, _ := datasetIDs(t, out, "mydata")
		return len(ids) == 4*rows
	}, 15*time.Second, 50*time.Millisecond)

	metricsText := p.get(t, "/metrics")
	for _, stage := range []string{"fetch", "transform", "combine"} {
		require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_stage_messages_acked_total\{stage="%s"\} [1-9]`, stage), metricsText)
		require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_stage_messages_received_total\{stage="%s"\} [1-9]`, stage), metricsText)
		require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_stage_handle_seconds_count\{outcome="acked",stage="%s"\} [1-9]`, stage), metricsText)
		require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_consumer_pending_messages\{stage="%s"\} \d`, stage), metricsText)
		require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_stage_ack_window\{stage="%s"\} [1-9]`, stage), metricsText)
	}
	require.Regexp(t, `(?m)^trainfeed_stage_messages_dead_lettered_total\{stage="fetch"\} 1$`, metricsText)
	// Freshness, publish to commit, of sources published by a plain NATS
	// client too (timed from when the stream stored them).
	require.Regexp(t, `(?m)^trainfeed_dataset_freshness_seconds_count\{dataset="mydata"\} [1-9]`, metricsText)
	require.Regexp(t, fmt.Sprintf(`(?m)^trainfeed_stage_records_total\{stage="combine"\} %d$`, 4*rows), metricsText)
	require.Regexp(t, `(?m)^trainfeed_dlq_messages\{dataset="mydata",stage="fetch"\} 1$`, metricsText)

	status, stderr, code := tf(t, "status", "--nats", p.nats, "--interval", "200ms")
	require.Equal(t, 0, code, stderr)
	t.Log("\n" + status)
	require.Regexp(t, `(?m)^STAGE\s+PENDING\s+IN FLIGHT/WINDOW\s+RATE/S\s+REDELIVERED\s+DLQ$`, status)
	require.Regexp(t, `(?m)^fetch\s+0\s+0/256\s+[\d.]+\s+0\s+1$`, status)
	require.Regexp(t, `(?m)^transform\s+0\s+0/32\s+[\d.]+\s+0\s+0$`, status)
	require.Regexp(t, `(?m)^combine\s+0\s+0/64\s+[\d.]+\s+0\s+0$`, status)
	// The last chunk of each dataset, and how fresh its records were.
	require.Regexp(t, `(?m)^DATASET\s+LAST CHUNK\s+COMMITTED\s+FRESHNESS P50\s+MAX$`, status)
	require.Regexp(t, `(?m)^mydata\s+[1-9]\d*\s+\S+ ago\s+\d\S*s\s+\d\S*s$`, status)
	var st metrics.State
	require.NoError(t, json.Unmarshal([]byte(p.get(t, "/v1/status")), &st))
	require.Len(t, st.Stages, 3)
	require.NotEmpty(t, st.Datasets)
	require.Positive(t, st.Datasets[0].FreshnessMax)
	p.stop(t, 15*time.Second)
}

// SIGTERM while sources are being fetched: serve stops pulling, finishes or
// hands back what it holds, exits 0; started again on the same store it
// completes the rest, every record exactly once.
func TestServeSIGTERMLosesNothing(t *testing.T) {
	const n, rows = 60, 100
	src := newFlakySource(t, rows, 150*time.Millisecond, nil)
	out, store := t.TempDir(), t.TempDir()
	args := []string{"--out", out, "--store", store, "--format", "jsonl", "--chunk-records", "500", "--max-age", "200ms", "--per-host", "4"}
	p := startServe(t, args...)
	resp, body := p.postSources(t, src.jsonSources(0, n))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Eventually(t, func() bool {
		_, got := datasetIDs(t, out, "default")
		return got >= 5*rows
	}, 15*time.Second, 20*time.Millisecond)
	p.stop(t, 15*time.Second)
	_, got := datasetIDs(t, out, "default")
	require.Less(t, got, int64(n*rows), "the test should stop serve mid-way")

	p = startServe(t, args...)
	waitRecords(t, out, "default", n*rows, 20*time.Second)
	require.Empty(t, dlqEntries(t, p.nats))
	p.stop(t, 15*time.Second)
}

// POST /v1/sources validates before it publishes anything.
func TestServePostSourcesBadInput(t *testing.T) {
	p := startServe(t, "--out", t.TempDir(), "--stages", "combine")
	for _, tt := range []struct{ body, want string }{
		{`{"url": ""}`, "no url"},
		{`[{"url": "http://x/a.csv"}, {"url": "http://x/b c"}]`, "source 1: not a URL or path"},
		{`{"url": "http://x/a.csv", "dataset": "no spaces"}`, "dataset"},
		{`{"url": "http://x/a.csv", "colour": "red"}`, `unknown field "colour"`},
		{`url=http://x/a.csv`, "not JSON"},
		{`[]`, "empty array"},
	} {
		resp, body := p.postSources(t, tt.body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, tt.body)
		assert.Contains(t, body["error"], tt.want, tt.body)
	}
	resp, body := p.postSources(t, `{"url": "http://x/a.csv", "id": "a"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Equal(t, "a", body["sources"].([]any)[0].(map[string]any)["id"])
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 0, p.Wait(30*time.Second))
}

// serve --stages none is an HTTP front door only: sources posted to it are
// done by the stages of other processes, and it holds no work itself.
func TestServeStagesNone(t *testing.T) {
	const n, rows = 5, 20
	src := newFlakySource(t, rows, 0, nil)
	out := t.TempDir()
	workers := startServe(t, "--out", out, "--format", "jsonl", "--max-age", "200ms")
	api := startServe(t, "--nats", workers.nats, "--out", t.TempDir(), "--stages", "none")
	require.Contains(t, api.Output(), "stages []")
	resp, body := api.postSources(t, src.jsonSources(0, n))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	waitRecords(t, out, "default", n*rows, 20*time.Second)
	require.NotRegexp(t, `(?m)^trainfeed_stage_messages_received_total`, api.get(t, "/metrics"))
	_, stderr, code := tf(t, "serve", "--stages", "none,fetch", "--out", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `"none" runs no stage and goes alone`)
	api.stop(t, 15*time.Second)
	workers.stop(t, 15*time.Second)
}
