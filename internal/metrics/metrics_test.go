package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func pipeline(t *testing.T) (jetstream.JetStream, *topology.Topology) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t))
	topo, err := topology.Ensure(context.Background(), js, topology.DefaultConfig())
	require.NoError(t, err)
	return js, topo
}

func publishSources(t *testing.T, js jetstream.JetStream, dataset string, urls ...string) {
	t.Helper()
	for _, u := range urls {
		data, err := wire.Encode(&wire.Source{URL: u})
		require.NoError(t, err)
		_, err = js.Publish(context.Background(), topology.Subject(topology.SubjectSources, dataset), data)
		require.NoError(t, err)
	}
}

// value returns the value of the metric name with the given labels.
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return metricValue(mt), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestRunnerCountersAndLatency(t *testing.T) {
	js, topo := pipeline(t)
	m := metrics.New(metrics.Config{JS: js, StateEvery: time.Millisecond})
	h := runner.HandlerFunc(func(ctx context.Context, msg *runner.Msg) error {
		if strings.Contains(string(msg.Data), "bad") {
			return runner.Permanent(errors.New("404 not found"))
		}
		return nil
	})
	r, err := runner.New(js, topo.Fetch, h, runner.Config{
		Stage: "fetch",
		Observe: func(msg *runner.Msg, o runner.Outcome, took time.Duration) {
			m.Observe("fetch", msg, o, took)
		},
	})
	require.NoError(t, err)
	m.AddRunner("fetch", r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	publishSources(t, js, "ds", "https://x/1.csv", "https://x/2.csv", "https://x/bad.csv")
	require.Eventually(t, func() bool { return r.Stats().Acked.Load() == 2 && r.Stats().DeadLettered.Load() == 1 }, 15*time.Second, 10*time.Millisecond)

	stage := map[string]string{"stage": "fetch"}
	for name, want := range map[string]float64{
		"trainfeed_stage_messages_received_total":      3,
		"trainfeed_stage_messages_acked_total":         2,
		"trainfeed_stage_messages_dead_lettered_total": 1,
		"trainfeed_stage_messages_retried_total":       0,
		"trainfeed_stage_in_flight":                    0,
		"trainfeed_stage_ack_window":                   256,
	} {
		got, ok := value(t, m, name, stage)
		require.True(t, ok, name)
		require.Equal(t, want, got, name)
	}
	got, _ := value(t, m, "trainfeed_stage_handle_seconds", map[string]string{"stage": "fetch", "outcome": "acked"})
	require.EqualValues(t, 2, got)
	got, _ = value(t, m, "trainfeed_stage_handle_seconds", map[string]string{"stage": "fetch", "outcome": "dead_lettered"})
	require.EqualValues(t, 1, got)
	got, _ = value(t, m, "trainfeed_stage_input_bytes_total", stage)
	require.Positive(t, got)
	require.Eventually(t, func() bool {
		got, ok := value(t, m, "trainfeed_dlq_messages", map[string]string{"stage": "fetch", "dataset": "ds"})
		return ok && got == 1
	}, 15*time.Second, 10*time.Millisecond)
	got, ok := value(t, m, "trainfeed_consumer_delivered_total", stage)
	require.True(t, ok)
	require.EqualValues(t, 3, got)
	_, ok = value(t, m, "trainfeed_consumer_pending_messages", map[string]string{"stage": "combine"})
	require.False(t, ok, "only the consumers of the stages this process runs")
	got, _ = value(t, m, "trainfeed_stream_messages", map[string]string{"stream": topology.StreamSources})
	require.EqualValues(t, 3, got)
}

func TestReadState(t *testing.T) {
	js, _ := pipeline(t)
	ctx := context.Background()
	publishSources(t, js, "a", "https://x/1.csv", "https://x/2.csv")
	for _, subj := range []string{"trainfeed.dlq.fetch.a", "trainfeed.dlq.fetch.b", "trainfeed.dlq.transform.a"} {
		_, err := js.Publish(ctx, subj, []byte("x"))
		require.NoError(t, err)
	}
	st, err := metrics.ReadState(ctx, js)
	require.NoError(t, err)
	require.Len(t, st.Stages, 3)
	f := st.Stage("fetch")
	require.EqualValues(t, 2, f.Pending)
	require.Equal(t, 256, f.Window)
	require.EqualValues(t, 2, f.DLQ)
	require.EqualValues(t, 1, st.Stage("transform").DLQ)
	require.Equal(t, []metrics.DLQCount{{"fetch", "a", 1}, {"fetch", "b", 1}, {"transform", "a", 1}}, st.DLQ)

	// A NATS without trainfeed: everything missing, no error.
	_, bare := natstest.Connect(t, natstest.Server(t))
	st, err = metrics.ReadState(ctx, bare)
	require.NoError(t, err)
	for _, s := range st.Stages {
		require.True(t, s.Missing)
	}
}

func TestStateCached(t *testing.T) {
	js, _ := pipeline(t)
	m := metrics.New(metrics.Config{JS: js, StateEvery: time.Hour})
	first := m.State(context.Background())
	require.NotNil(t, first)
	publishSources(t, js, "a", "https://x/1.csv")
	require.Same(t, first, m.State(context.Background()), "read at most every StateEvery")
	require.Nil(t, metrics.New(metrics.Config{}).State(context.Background()))
}

func TestServer(t *testing.T) {
	m := metrics.New(metrics.Config{})
	srv, err := metrics.Listen("127.0.0.1:0", m.Handler())
	require.NoError(t, err)
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "go_goroutines")
	require.NoError(t, srv.Close(time.Second))
	_, err = metrics.Listen("256.0.0.1:1", m.Handler())
	require.Error(t, err)
}

// The rows the transform stage skipped are counted per dataset as combine
// completes their batches.
func TestSkippedRowsPerDataset(t *testing.T) {
	m := metrics.New(metrics.Config{})
	for _, skipped := range []int{3, 0, 2} {
		data, err := wire.Encode(&wire.RecordBatch{SourceID: "s", Dataset: "ds", Rows: 5, SkippedRows: skipped})
		require.NoError(t, err)
		m.Observe(topology.ConsumerCombine, &runner.Msg{Subject: "trainfeed.records.ds", Dataset: "ds", Data: data}, runner.OutcomeAcked, time.Millisecond)
	}
	got, ok := value(t, m, "trainfeed_dataset_rows_skipped_total", map[string]string{"dataset": "ds"})
	require.True(t, ok)
	require.EqualValues(t, 5, got)
	got, _ = value(t, m, "trainfeed_stage_records_total", map[string]string{"stage": "combine"})
	require.EqualValues(t, 15, got)
}

// The chunks combine commits count their rows and nulled values per
// dataset; a rewrite counts as a rewrite, its rows not again.
func TestCommittedChunksPerDataset(t *testing.T) {
	m := metrics.New(metrics.Config{})
	m.Committed(&wire.Chunk{Dataset: "ds", Records: 7, Parts: []wire.PartRef{
		{Rows: 4, Nulled: 1, PublishedAt: time.Now().Add(-2 * time.Second)}, {Rows: 3, Nulled: 2}}})
	m.Committed(&wire.Chunk{Dataset: "ds", Records: 5, Parts: []wire.PartRef{{Rows: 5}}})
	m.Committed(&wire.Chunk{Dataset: "ds", Records: 7, Replaces: "chunk-000000000001-aaaaaaaa.parquet"})
	for name, want := range map[string]float64{
		"trainfeed_dataset_rows_written_total":     12,
		"trainfeed_dataset_values_nulled_total":    3,
		"trainfeed_dataset_chunks_rewritten_total": 1,
		"trainfeed_dataset_freshness_seconds":      1, // its count: only the part that says when it was published
	} {
		got, ok := value(t, m, name, map[string]string{"dataset": "ds"})
		require.True(t, ok, name)
		require.Equal(t, want, got, name)
	}
}
