// Package metrics exposes trainfeed to Prometheus and to `trainfeed status`:
// each stage runner's counters (read from runner.Stats when scraped, so
// nothing is counted twice), handling latency, bytes and records (fed by
// the runner's Observe hook), and the JetStream side of the pipeline —
// consumer pending, ack pending against the ack window, redeliveries, stream
// sizes and dead letters per stage and dataset — read at most every few
// seconds however often it is scraped.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Namespace starts every metric name.
const Namespace = "trainfeed"

// Config shapes Metrics.
type Config struct {
	// JS reads the consumers' and streams' state. Nil: only this process's
	// own counters are exported.
	JS jetstream.JetStream
	// StateEvery bounds how often a scrape reads JetStream; in between the
	// last state read is exported again. Default 5s.
	StateEvery time.Duration
	// Logger receives state read failures (at debug level). Default slog.Default().
	Logger *slog.Logger
}

// Metrics is one process's registry of trainfeed metrics. Its methods are
// safe for concurrent use.
type Metrics struct {
	cfg     Config
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	bytes   *prometheus.CounterVec
	records *prometheus.CounterVec
	skipped *prometheus.CounterVec
	written *prometheus.CounterVec
	nulled  *prometheus.CounterVec
	rewrote *prometheus.CounterVec
	fresh   *prometheus.HistogramVec

	mu      sync.Mutex
	runners map[string]*runner.Runner
	state   *State
	stateAt time.Time
}

// New returns a registry with the Go runtime and process collectors and
// trainfeed's own metrics. Add the runners of the stages this process runs
// with AddRunner, and feed Observe from their runner.Config.Observe.
func New(cfg Config) *Metrics {
	if cfg.StateEvery <= 0 {
		cfg.StateEvery = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Metrics{
		cfg: cfg, reg: prometheus.NewRegistry(), runners: map[string]*runner.Runner{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "handle_seconds",
			Help:    "Time a stage took to handle a message, by what became of it.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"stage", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "input_bytes_total",
			Help: "Payload bytes of the messages a stage completed (acked).",
		}, []string{"stage"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "records_total",
			Help: "Records in the batches the combine stage completed (a redelivered batch already in a chunk counts again).",
		}, []string{"stage"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dataset", Name: "rows_skipped_total",
			Help: "Malformed input rows skipped, as the record batches the combine stage completed count them (a redelivered batch already in a chunk counts again).",
		}, []string{"dataset"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dataset", Name: "rows_written_total",
			Help: "Rows in the chunks this process's combine stage committed (each row once).",
		}, []string{"dataset"}),
		nulled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dataset", Name: "values_nulled_total",
			Help: "Values written as null because they did not fit their column's type, in the chunks this process committed.",
		}, []string{"dataset"}),
		rewrote: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "dataset", Name: "chunks_rewritten_total",
			Help: "Chunks this process wrote again in a widened schema.",
		}, []string{"dataset"}),
		fresh: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "dataset", Name: "freshness_seconds",
			Help:    "Time from a source's publish to the commit of the chunk that holds its records, per committed part.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"dataset"}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.own()...)
	return m
}

// own returns the collectors of trainfeed's own metrics.
func (m *Metrics) own() []prometheus.Collector {
	return []prometheus.Collector{m.latency, m.bytes, m.records, m.skipped, m.written, m.nulled, m.rewrote, m.fresh, (*collector)(m)}
}

// Names returns the name of every trainfeed metric m exports, sorted; a
// histogram by its base name (its series add _bucket, _sum and _count).
func (m *Metrics) Names() []string {
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		defer close(ch)
		for _, c := range m.own() {
			c.Describe(ch)
		}
	}()
	seen := map[string]bool{}
	for d := range ch {
		if n := fqName.FindStringSubmatch(d.String()); n != nil {
			seen[n[1]] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// fqName finds a metric's name in prometheus.Desc's String.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Registry returns the registry, to add more collectors to.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogLogger{m.cfg.Logger}})
}

// AddRunner exports the counters of stage's runner.
func (m *Metrics) AddRunner(stage string, r *runner.Runner) {
	if r == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runners[stage] = r
}

// Observe records one handled message; it has the signature of
// pipeline.Config.Observe.
func (m *Metrics) Observe(stage string, msg *runner.Msg, outcome runner.Outcome, took time.Duration) {
	m.latency.WithLabelValues(stage, string(outcome)).Observe(took.Seconds())
	if outcome != runner.OutcomeAcked {
		return
	}
	m.bytes.WithLabelValues(stage).Add(float64(len(msg.Data)))
	if stage == topology.ConsumerCombine {
		var b struct {
			Rows    int `msgpack:"rows"`
			Skipped int `msgpack:"skipped_rows"`
		}
		if msgpack.Unmarshal(msg.Data, &b) == nil {
			if b.Rows > 0 {
				m.records.WithLabelValues(stage).Add(float64(b.Rows))
			}
			if b.Skipped > 0 {
				m.skipped.WithLabelValues(msg.Dataset).Add(float64(b.Skipped))
			}
		}
	}
}

// Committed counts a chunk the combine stage committed; it has the
// signature of combine.Config.OnCommit.
func (m *Metrics) Committed(ch *wire.Chunk) {
	if ch.Replaces != "" {
		m.rewrote.WithLabelValues(ch.Dataset).Inc()
		return
	}
	m.written.WithLabelValues(ch.Dataset).Add(float64(ch.Records))
	nulled := 0
	now := time.Now()
	for _, p := range ch.Parts {
		nulled += p.Nulled
		if !p.PublishedAt.IsZero() {
			m.fresh.WithLabelValues(ch.Dataset).Observe(now.Sub(p.PublishedAt).Seconds())
		}
	}
	if nulled > 0 {
		m.nulled.WithLabelValues(ch.Dataset).Add(float64(nulled))
	}
}

// State returns the pipeline state, read from JetStream at most every
// StateEvery; nil when there is no JetStream or it could not be read yet.
func (m *Metrics) State(ctx context.Context) *State {
	if m.cfg.JS == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != nil && time.Since(m.stateAt) < m.cfg.StateEvery {
		return m.state
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := ReadState(ctx, m.cfg.JS)
	if err != nil {
		m.cfg.Logger.Debug("metrics: read pipeline state", "err", err)
		// Try again at the next scrape, and export the last state meanwhile.
		return m.state
	}
	m.state, m.stateAt = st, time.Now()
	return st
}

// collector exports runner stats and JetStream state when scraped.
type collector Metrics

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
}

var (
	descReceived     = desc("stage_messages_received_total", "Messages a stage pulled and started to handle.", "stage")
	descAcked        = desc("stage_messages_acked_total", "Messages a stage completed and acknowledged.", "stage")
	descRetried      = desc("stage_messages_retried_total", "Messages a stage gave back to be delivered again later (nak with delay).", "stage")
	descDeadLettered = desc("stage_messages_dead_lettered_total", "Messages a stage moved to the DLQ.", "stage")
	descHandedBack   = desc("stage_messages_handed_back_total", "Messages a stopping stage handed back unfinished.", "stage")
	descInFlight     = desc("stage_in_flight", "Messages this process is handling now.", "stage")
	descWindow       = desc("stage_ack_window", "The stage consumer's ack window (MaxAckPending), shared by every process of the stage.", "stage")

	descPending     = desc("consumer_pending_messages", "Messages waiting for the stage consumer, not delivered yet.", "stage")
	descAckPending  = desc("consumer_ack_pending_messages", "Messages delivered to the stage's consumer group and not acknowledged yet.", "stage")
	descRedelivered = desc("consumer_redelivered_messages", "Unacknowledged messages the stage consumer delivered more than once.", "stage")
	descDelivered   = desc("consumer_delivered_total", "Deliveries of the stage consumer, redeliveries included.", "stage")
	descStreamMsgs  = desc("stream_messages", "Messages in a stream.", "stream")
	descStreamBytes = desc("stream_bytes", "Bytes in a stream.", "stream")
	descStreamMax   = desc("stream_max_bytes", "A stream's byte limit (-1: none); at it, the stream refuses new messages.", "stream")
	descDLQ         = desc("dlq_messages", "Dead letters in the DLQ by stage and dataset.", "stage", "dataset")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descReceived, descAcked, descRetried, descDeadLettered, descHandedBack, descInFlight, descWindow,
		descPending, descAckPending, descRedelivered, descDelivered, descStreamMsgs, descStreamBytes, descStreamMax, descDLQ,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	m.mu.Lock()
	runners := make(map[string]*runner.Runner, len(m.runners))
	for k, v := range m.runners {
		runners[k] = v
	}
	m.mu.Unlock()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for stage, r := range runners {
		s := r.Stats()
		counter(descReceived, float64(s.Received.Load()), stage)
		counter(descAcked, float64(s.Acked.Load()), stage)
		counter(descRetried, float64(s.Retried.Load()), stage)
		counter(descDeadLettered, float64(s.DeadLettered.Load()), stage)
		counter(descHandedBack, float64(s.HandedBack.Load()), stage)
		gauge(descInFlight, float64(s.InFlight.Load()), stage)
		gauge(descWindow, float64(r.Window()), stage)
	}
	st := m.State(context.Background())
	if st == nil {
		return
	}
	for _, cs := range st.Stages {
		if cs.Missing || (len(runners) > 0 && runners[cs.Stage] == nil) {
			continue // report the consumers of the stages this process runs
		}
		gauge(descPending, float64(cs.Pending), cs.Stage)
		gauge(descAckPending, float64(cs.AckPending), cs.Stage)
		gauge(descRedelivered, float64(cs.Redelivered), cs.Stage)
		counter(descDelivered, float64(cs.Delivered), cs.Stage)
		if runners[cs.Stage] == nil {
			gauge(descWindow, float64(cs.Window), cs.Stage)
		}
	}
	for _, ss := range st.Streams {
		if ss.Missing {
			continue
		}
		gauge(descStreamMsgs, float64(ss.Messages), ss.Stream)
		gauge(descStreamBytes, float64(ss.Bytes), ss.Stream)
		gauge(descStreamMax, float64(ss.MaxBytes), ss.Stream)
	}
	for _, d := range st.DLQ {
		gauge(descDLQ, float64(d.Messages), d.Stage, d.Dataset)
	}
}

// slogLogger adapts slog to promhttp's error log.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Println(v ...any) { s.l.Warn("metrics", "err", v) }
