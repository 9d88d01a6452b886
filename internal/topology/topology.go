// Package topology owns trainfeed's JetStream layout: the names of its
// streams, subjects, consumers, key-value buckets and object stores, and the
// code that creates them idempotently.
package topology

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/objects"
)

// Streams, consumers, buckets and subjects. A subject ends with the dataset
// name, e.g. "trainfeed.sources.mydata"; dead letters add the stage first,
// "trainfeed.dlq.fetch.mydata".
const (
	StreamSources = "TRAINFEED_SOURCES"
	StreamFetched = "TRAINFEED_FETCHED"
	StreamRecords = "TRAINFEED_RECORDS"
	StreamChunks  = "TRAINFEED_CHUNKS"
	StreamDLQ     = "TRAINFEED_DLQ"

	SubjectSources = "trainfeed.sources"
	SubjectFetched = "trainfeed.fetched"
	SubjectRecords = "trainfeed.records"
	SubjectChunks  = "trainfeed.chunks"
	SubjectDLQ     = "trainfeed.dlq"

	ConsumerFetch     = "fetch"
	ConsumerTransform = "transform"
	ConsumerCombine   = "combine"

	BucketBodies   = "trainfeed-bodies"
	BucketManifest = "trainfeed-manifest"
	BucketChunks   = "trainfeed-chunks"
	BucketCache    = "trainfeed-cache"
)

// Subject returns prefix.dataset, the subject of one dataset's messages.
func Subject(prefix, dataset string) string { return prefix + "." + dataset }

// RewriteSubject returns the subject that announces a dataset's chunks
// written again in a widened schema, beside (not among) its chunk events.
func RewriteSubject(dataset string) string { return Subject(SubjectChunks, dataset) + ".rewritten" }

// ManifestKey returns the manifest bucket key of a dataset's chunk: sorting
// keys sorts by dataset, then commit order.
func ManifestKey(dataset string, seq uint64) string { return fmt.Sprintf("%s.%012d", dataset, seq) }

// DLQSubject returns the dead-letter subject of a stage and dataset.
func DLQSubject(stage, dataset string) string {
	return SubjectDLQ + "." + stage + "." + dataset
}

// DatasetOf returns the dataset token of a trainfeed subject (its last token).
func DatasetOf(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// Window is one stage consumer's flow settings.
type Window struct {
	// MaxAckPending is the ack window: how many messages the whole consumer
	// group may hold unacknowledged.
	MaxAckPending int
	// AckWait is how long a delivered message may go without an ack or an
	// in-progress signal before it is redelivered.
	AckWait time.Duration
	// MaxDeliver is how many deliveries of a message may fail before the
	// stage's runner dead-letters it. The runner counts them, not the
	// server: the consumer itself redelivers without limit, because a
	// message the server stops delivering stays in its work stream for good
	// and reaches no dead letter queue — as one handed back on shutdown, or
	// whose dead letter could not be published, on its last delivery would.
	// The limit travels in the consumer's metadata (MetaMaxDeliver), so
	// every process running the stage reads the same one.
	MaxDeliver int
}

// MetaMaxDeliver is the consumer metadata key that holds Window.MaxDeliver.
const MetaMaxDeliver = "trainfeed.max_deliver"

// ConsumerConfig returns the configuration of the durable pull consumer name
// with window w: explicit acks, w's ack window and AckWait, and deliveries
// without a server limit (see Window.MaxDeliver).
func ConsumerConfig(name string, w Window) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "trainfeed " + name + " stage",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: w.MaxAckPending,
		MaxWaiting:    512,
		Metadata:      map[string]string{MetaMaxDeliver: strconv.Itoa(w.MaxDeliver)},
	}
}

// MaxDeliverOf returns the delivery limit of a consumer: MetaMaxDeliver
// from its metadata, else its server-side MaxDeliver (a consumer trainfeed
// did not make), else 0, no limit.
func MaxDeliverOf(cfg jetstream.ConsumerConfig) int {
	if n, err := strconv.Atoi(cfg.Metadata[MetaMaxDeliver]); err == nil && n > 0 {
		return n
	}
	return max(cfg.MaxDeliver, 0)
}

// Config sizes the topology.
type Config struct {
	// Replicas of every stream and bucket. Default 1. Ensure never lowers
	// the replicas of a stream or bucket that has more; ReplicasFor picks
	// them for a cluster.
	Replicas int
	// Storage of streams: file (default) or memory.
	Storage jetstream.StorageType
	// MaxBytes caps each work stream (fetched, records); when full, publishers are refused
	// (discard new) and retry. Default 1 GiB.
	MaxBytes int64
	// Duplicates is the dedup window of Nats-Msg-Id. Default 2 minutes.
	Duplicates time.Duration
	// Sources, Fetched, Records and DLQ cap the streams of those names
	// beyond MaxBytes (docs/serve.md, "Backpressure"). Every stream
	// refuses new messages when full (discard new): nothing stored is ever
	// dropped to make room, and publishers are told to retry.
	Sources, Fetched, Records, DLQ Limits
	// Fetch, Transform and Combine are the consumer windows.
	Fetch, Transform, Combine Window
	// UpdateConsumers makes Ensure write these windows into consumers that
	// exist already: for setup, and for a sole member (run, the embedded
	// server). Otherwise an existing consumer keeps the group's stored
	// settings, and Topology.Kept says where this Config asked otherwise.
	UpdateConsumers bool
}

// Limits caps one stream. Zero fields take the defaults given for each.
type Limits struct {
	// MaxBytes caps the stream's size in bytes. Default: Config.MaxBytes
	// (the DLQ: no limit).
	MaxBytes int64
	// MaxMsgs caps the messages the stream holds. Default: no limit.
	MaxMsgs int64
	// MaxAge removes messages older than this. Only the sources and DLQ
	// streams take it: an age limit on a work stream would drop work nobody
	// has done. Default: 7 days for sources, none for the DLQ.
	MaxAge time.Duration
}

// DefaultSourcesMaxAge is how long the sources stream keeps a source for
// rebuilds unless Config.Sources.MaxAge says otherwise.
const DefaultSourcesMaxAge = 7 * 24 * time.Hour

// DefaultConfig returns the settings trainfeed runs with unless told otherwise.
// The windows are sized from measurements (docs/performance.md): fetch is
// I/O bound and holds many sources; transform is CPU bound; combine must hold a
// whole chunk's worth of batches until the chunk commits.
func DefaultConfig() Config {
	return Config{
		Replicas:   1,
		Storage:    jetstream.FileStorage,
		MaxBytes:   1 << 30,
		Duplicates: 2 * time.Minute,
		Fetch:      Window{MaxAckPending: 256, AckWait: 30 * time.Second, MaxDeliver: 6},
		Transform:  Window{MaxAckPending: 32, AckWait: 30 * time.Second, MaxDeliver: 5},
		Combine:    Window{MaxAckPending: 64, AckWait: 30 * time.Second, MaxDeliver: 10},
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas %d: must be 1 to 5", c.Replicas)
	}
	for name, l := range map[string]Limits{StreamSources: c.Sources, StreamFetched: c.Fetched, StreamRecords: c.Records, StreamDLQ: c.DLQ} {
		if l.MaxBytes < 0 || l.MaxMsgs < 0 || l.MaxAge < 0 {
			return fmt.Errorf("%s limits: max bytes, max messages and max age must not be negative", name)
		}
	}
	if c.Fetched.MaxAge != 0 || c.Records.MaxAge != 0 {
		return errors.New("work streams take no max age: it would drop messages no stage has handled yet")
	}
	for name, w := range map[string]Window{ConsumerFetch: c.Fetch, ConsumerTransform: c.Transform, ConsumerCombine: c.Combine} {
		if w.MaxAckPending < 1 {
			return fmt.Errorf("%s window: max ack pending %d must be positive", name, w.MaxAckPending)
		}
		if w.AckWait < time.Second {
			return fmt.Errorf("%s window: ack wait %s must be at least 1s", name, w.AckWait)
		}
		if w.MaxDeliver < 1 {
			return fmt.Errorf("%s window: max deliver %d must be positive", name, w.MaxDeliver)
		}
	}
	return nil
}

// Topology is the set of JetStream resources trainfeed uses, once ensured.
type Topology struct {
	JS       jetstream.JetStream
	Bodies   jetstream.ObjectStore
	Manifest jetstream.KeyValue
	// Chunks holds committed chunk files under "<dataset>/<sha256><ext>", so a
	// trainer on another machine can follow a dataset through NATS.
	Chunks jetstream.ObjectStore
	// Cache is the fetch stage's key-value bucket, shared by every fetch
	// member: HTTP validators per URL and the source id that holds each body
	// (docs/fetch.md).
	Cache   jetstream.KeyValue
	Fetch   jetstream.Consumer
	Combine jetstream.Consumer
	// Transform is the transform stage's consumer.
	Transform jetstream.Consumer
	// Kept lists the settings of existing consumers Ensure left as stored
	// although the Config asked otherwise (see Config.UpdateConsumers).
	Kept []Kept
}

// Kept is a consumer setting Ensure kept as stored.
type Kept struct {
	Consumer, Setting string
	Stored, Asked     string
}

// Ensure creates or updates every stream and bucket, and creates every
// consumer (updating an existing one only with Config.UpdateConsumers),
// so it may be called at every start by every process. It retries while a fresh cluster
// has no meta leader yet, until ctx ends.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (*Topology, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	var t *Topology
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		t, err = ensure(ctx, js, cfg)
		return err
	})
	return t, err
}

// retry calls f until it succeeds, fails for good or ctx ends. The first
// attempts get little time: a cluster without a meta leader drops requests,
// and one that gets the same stream created by several processes at once
// answers only one of them (nats-server 2.15): a short attempt turns such a
// lost answer into a quick retry, which finds the stream made.
func retry(ctx context.Context, f func(ctx context.Context) error) error {
	delay := 100 * time.Millisecond
	timeout := 2 * time.Second
	for {
		attempt, cancel := context.WithTimeout(ctx, timeout)
		err := f(attempt)
		cancel()
		if err == nil || !retryable(err) {
			return err
		}
		// Up to a second of jitter, about what a whole attempt takes, so that
		// members that started together stop retrying in step.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(delay + rand.N(time.Second)):
		}
		delay = min(2*delay, 2*time.Second)
		timeout = min(timeout*3/2, 10*time.Second)
	}
}

// retryable reports the errors a cluster gives while it is still forming:
// no meta leader yet, no responders, timeouts.
func retryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		// Not 10074 ("replicas > 1 not supported in non-clustered mode"): a
		// single server says it for good, and a forming cluster does not
		// answer at all (the request times out until a meta leader exists).
		case 10008 /* cluster not available */, 10023 /* insufficient resources */ :
			return true
		}
	}
	return false
}

func ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (*Topology, error) {
	orDefault := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	work := func(name, subject string, l Limits) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{subject + ".>"},
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    cfg.Storage,
			Replicas:   cfg.Replicas,
			MaxBytes:   orDefault(l.MaxBytes, cfg.MaxBytes),
			MaxMsgs:    orDefault(l.MaxMsgs, -1),
			Discard:    jetstream.DiscardNew,
			Duplicates: cfg.Duplicates,
		}
	}
	sourcesAge := cfg.Sources.MaxAge
	if sourcesAge == 0 {
		sourcesAge = DefaultSourcesMaxAge
	}
	streams := []jetstream.StreamConfig{
		// Sources are kept (limits retention) so a dataset can be rebuilt from them.
		{
			Name: StreamSources, Subjects: []string{SubjectSources + ".>"}, Retention: jetstream.LimitsPolicy,
			Storage: cfg.Storage, Replicas: cfg.Replicas, MaxAge: sourcesAge, Duplicates: cfg.Duplicates,
			MaxBytes: orDefault(cfg.Sources.MaxBytes, cfg.MaxBytes), MaxMsgs: orDefault(cfg.Sources.MaxMsgs, -1),
			Discard: jetstream.DiscardNew,
		},
		work(StreamFetched, SubjectFetched, cfg.Fetched),
		work(StreamRecords, SubjectRecords, cfg.Records),
		{
			Name: StreamChunks, Subjects: []string{SubjectChunks + ".>"}, Retention: jetstream.LimitsPolicy,
			Storage: cfg.Storage, Replicas: cfg.Replicas, Duplicates: cfg.Duplicates,
		},
		{
			Name: StreamDLQ, Subjects: []string{SubjectDLQ + ".>"}, Retention: jetstream.LimitsPolicy,
			Storage: cfg.Storage, Replicas: cfg.Replicas, Duplicates: cfg.Duplicates,
			MaxBytes: orDefault(cfg.DLQ.MaxBytes, -1), MaxMsgs: orDefault(cfg.DLQ.MaxMsgs, -1),
			MaxAge: cfg.DLQ.MaxAge, Discard: jetstream.DiscardNew,
		},
	}
	for _, sc := range streams {
		sc.Replicas = keepReplicas(ctx, js, sc.Name, sc.Replicas)
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	t := &Topology{JS: js}
	var err error
	if t.Fetch, err = t.consumer(ctx, StreamSources, ConsumerFetch, cfg.Fetch, cfg.UpdateConsumers); err != nil {
		return nil, err
	}
	if t.Transform, err = t.consumer(ctx, StreamFetched, ConsumerTransform, cfg.Transform, cfg.UpdateConsumers); err != nil {
		return nil, err
	}
	if t.Combine, err = t.consumer(ctx, StreamRecords, ConsumerCombine, cfg.Combine, cfg.UpdateConsumers); err != nil {
		return nil, err
	}
	t.Bodies, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketBodies, Description: "fetched bodies, content-addressed by sha256",
		Storage: cfg.Storage, Replicas: keepReplicas(ctx, js, objects.StreamName(BucketBodies), cfg.Replicas), TTL: 7 * 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure object store %s: %w", BucketBodies, err)
	}
	t.Manifest, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketManifest, Description: "committed chunks per dataset",
		Storage: cfg.Storage, Replicas: keepReplicas(ctx, js, "KV_"+BucketManifest, cfg.Replicas), History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure key-value %s: %w", BucketManifest, err)
	}
	t.Chunks, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketChunks, Description: "committed chunk files, <dataset>/<file>",
		Storage: cfg.Storage, Replicas: keepReplicas(ctx, js, objects.StreamName(BucketChunks), cfg.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure object store %s: %w", BucketChunks, err)
	}
	t.Cache, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketCache, Description: "fetch cache: validators per URL, source id per body",
		Storage: cfg.Storage, Replicas: keepReplicas(ctx, js, "KV_"+BucketCache, cfg.Replicas), History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure key-value %s: %w", BucketCache, err)
	}
	return t, nil
}

// IsFull reports whether err is JetStream refusing a message because the
// stream is at one of its limits (discard new) or the server is out of
// storage for it: the message was not stored, and publishing it again once
// the stream has drained succeeds.
func IsFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10002 /* account resource limits exceeded */, 10047 /* insufficient storage resources */ :
		return true
	case 10077: // storing failed: {err}
		d := apiErr.Description
		return strings.Contains(d, "maximum messages") || strings.Contains(d, "maximum bytes")
	}
	return false
}

// ConsumerOf returns the consumer of a stage by name, or nil.
func (t *Topology) ConsumerOf(stage string) jetstream.Consumer {
	switch stage {
	case ConsumerFetch:
		return t.Fetch
	case ConsumerTransform:
		return t.Transform
	case ConsumerCombine:
		return t.Combine
	}
	return nil
}

// Reclaim hands back at once every message a stage consumer has delivered
// but not acknowledged, by resetting the consumer to its ack floor. Only a
// process that knows it is the sole member of every consumer group (the
// embedded `trainfeed run`) may call it: it is how a run restarted after a
// crash resumes without waiting AckWait for the dead process's messages.
// Messages above the floor that were acked are delivered again; stages are
// idempotent, so this costs work, never records.
func (t *Topology) Reclaim(ctx context.Context) error {
	for _, c := range []jetstream.Consumer{t.Fetch, t.Transform, t.Combine} {
		info, err := c.Info(ctx)
		if err != nil {
			return fmt.Errorf("reclaim: %w", err)
		}
		if info.NumAckPending == 0 {
			continue
		}
		if _, err := t.JS.ResetConsumer(ctx, info.Stream, info.Name); err != nil {
			return fmt.Errorf("reclaim %s: %w", info.Name, err)
		}
	}
	return nil
}

// consumer creates the consumer name with window w, or, when it exists and
// update is false, keeps it as stored and notes in t.Kept where w differs.
func (t *Topology) consumer(ctx context.Context, stream, name string, w Window, update bool) (jetstream.Consumer, error) {
	if !update {
		c, err := t.JS.Consumer(ctx, stream, name)
		if err == nil {
			stored := c.CachedInfo().Config
			t.keep(name, stored, w)
			if stored.MaxDeliver == -1 && stored.Metadata[MetaMaxDeliver] != "" {
				return c, nil
			}
			// Made by an older trainfeed, with a server delivery limit:
			// moved over to the runner's, its settings kept.
			w = Window{MaxAckPending: stored.MaxAckPending, AckWait: stored.AckWait, MaxDeliver: MaxDeliverOf(stored)}
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("look up consumer %s on %s: %w", name, stream, err)
		}
	}
	c, err := t.JS.CreateOrUpdateConsumer(ctx, stream, ConsumerConfig(name, w))
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", name, stream, err)
	}
	return c, nil
}

// keep notes the settings of the stored consumer config that w asks
// otherwise.
func (t *Topology) keep(name string, stored jetstream.ConsumerConfig, w Window) {
	if stored.AckWait != w.AckWait {
		t.Kept = append(t.Kept, Kept{Consumer: name, Setting: "ack wait", Stored: stored.AckWait.String(), Asked: w.AckWait.String()})
	}
	if stored.MaxAckPending != w.MaxAckPending {
		t.Kept = append(t.Kept, Kept{Consumer: name, Setting: "window", Stored: strconv.Itoa(stored.MaxAckPending), Asked: strconv.Itoa(w.MaxAckPending)})
	}
	if n := MaxDeliverOf(stored); n != w.MaxDeliver {
		t.Kept = append(t.Kept, Kept{Consumer: name, Setting: "max deliver", Stored: strconv.Itoa(n), Asked: strconv.Itoa(w.MaxDeliver)})
	}
}

// keepReplicas returns want, or the replicas stream already has when those
// are more. Every process ensures the topology when it starts, and one that
// asks for fewer (a default of 1 on a cluster) must not shrink what the
// others placed; shrinking is an operator's act (nats stream edit).
func keepReplicas(ctx context.Context, js jetstream.JetStream, stream string, want int) int {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return want // not there yet, or the cluster does not answer: creating it will tell
	}
	return max(want, s.CachedInfo().Config.Replicas)
}

// ReplicasFor returns the replicas trainfeed's streams and buckets get when
// none are asked for: 3 when the server nc is connected to is in a cluster of
// at least 3 servers, else 1.
func ReplicasFor(ctx context.Context, nc *nats.Conn) int {
	if ClusterSize(ctx, nc) >= 3 {
		return 3
	}
	return 1
}

// ClusterSize returns how many servers the cluster of nc's server announces
// to clients: the connect_urls of the INFO it greets a new connection with
// (nats.go keeps them to itself). It returns 1 for a server outside a
// cluster, one that announces nothing (no_advertise), and one it cannot ask.
// A server that listens on every interface announces each of its addresses,
// so URLs are counted per address family and the larger count wins; set the
// servers' client_advertise when they have several addresses of one family.
func ClusterSize(ctx context.Context, nc *nats.Conn) int {
	addr := nc.ConnectedAddr()
	if nc.ConnectedClusterName() == "" || addr == "" {
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 1
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	line, err := bufio.NewReaderSize(conn, 64<<10).ReadSlice('\n')
	if err != nil || !strings.HasPrefix(string(line), "INFO ") {
		return 1
	}
	var info struct {
		ConnectURLs []string `json:"connect_urls"`
	}
	if json.Unmarshal(line[len("INFO "):], &info) != nil {
		return 1
	}
	families := map[string]int{}
	for _, u := range info.ConnectURLs {
		host, _, err := net.SplitHostPort(u)
		if err != nil {
			continue
		}
		family := "name"
		if ip, err := netip.ParseAddr(host); err == nil {
			family = map[bool]string{true: "ip4", false: "ip6"}[ip.Unmap().Is4()]
		}
		families[family]++
	}
	n := 1
	for _, c := range families {
		n = max(n, c)
	}
	return n
}
