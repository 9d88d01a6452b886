package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/embedded"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
	"github.com/trainfeed/trainfeed/producers"
)

// FreshnessConfig describes one W3 run: sources published at a steady Rate
// into a running pipeline, each timed from its publish to the chunk event
// announcing the chunk that holds its last record.
type FreshnessConfig struct {
	// Config's URL, Rows, Format, ChunkRecords, Dir and Logger are used as
	// by Trainfeed; Sources is the number of sources published.
	Config
	// Rate is the number of sources published per second. Default 10.
	Rate float64
	// MaxAge is combine's flush age. Default 1s.
	MaxAge time.Duration
	// Drain bounds the wait for the last chunk after the last publish.
	// Default 30s.
	Drain time.Duration
}

// FreshnessResult holds one latency per source, sorted.
type FreshnessResult struct {
	// Latencies are, per source, the time from just before its Publish
	// call to the receipt of the chunk event listing its last part;
	// ascending.
	Latencies []time.Duration
	// Records is the number of records in the chunks announced.
	Records int64
	// Chunks is the number of chunk events received.
	Chunks int
}

// Quantile returns the q-quantile (0 < q ≤ 1) of the latencies, nearest rank.
func (r FreshnessResult) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.999999) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// Freshness runs W3: it starts an embedded server, the topology and the
// three stages as `trainfeed serve` would (the defaults of Trainfeed, with
// cfg.MaxAge), follows the chunk events of the default dataset, and
// publishes cfg.Sources sources, one every 1/Rate seconds. It returns once
// every source's last part is in an announced chunk, or fails after Drain.
// The chunk event is published after the manifest commit, so each latency
// is an upper bound of publish → in the manifest.
func Freshness(ctx context.Context, cfg FreshnessConfig) (FreshnessResult, error) {
	cfg.Config = cfg.withDefaults()
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	if err := cfg.validateWorkload(); err != nil {
		return FreshnessResult{}, err
	}
	store, out, root, err := cfg.makeDirs()
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}
	srv, err := embedded.Start(embedded.Config{StoreDir: store})
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}
	defer srv.Close()
	nc, err := srv.Connect()
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: jetstream: %w", err)
	}
	topo, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}
	var sc pipeline.Config
	sc.Logger = cfg.Logger
	sc.Fetch.Root = root
	sc.Fetch.AllowHosts = []string{"127.0.0.1"}
	sc.Combine = combine.DefaultConfig()
	sc.Combine.Out = out
	sc.Combine.Format = cfg.Format
	sc.Combine.ChunkRecords = cfg.ChunkRecords
	sc.Combine.MaxAge = cfg.MaxAge
	stages, err := pipeline.New(topo, sc)
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}
	pub, err := producers.NewPublisher(js, producers.DefaultDataset)
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}

	// Publish times and chunk times, by source URL.
	var (
		mu        sync.Mutex
		published = make(map[string]time.Time, cfg.Sources)
		committed = make(map[string]time.Time, cfg.Sources)
		res       FreshnessResult
		all       = make(chan struct{})
	)
	cons, err := js.OrderedConsumer(ctx, topology.StreamChunks, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topology.Subject(topology.SubjectChunks, producers.DefaultDataset)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: follow chunks: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		at := time.Now()
		var ch wire.Chunk
		if wire.Decode(m.Data(), &ch) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		res.Chunks++
		res.Records += ch.Records
		for _, p := range ch.Parts {
			if _, seen := committed[p.URL]; p.Last && !seen {
				committed[p.URL] = at
				if len(committed) == cfg.Sources {
					close(all)
				}
			}
		}
	})
	if err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: follow chunks: %w", err)
	}
	defer cc.Stop()

	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	stagesDone := make(chan error, 1)
	go func() { stagesDone <- stages.Run(stageCtx) }()
	stop := func() error {
		stopStages()
		return <-stagesDone
	}

	every := time.Duration(float64(time.Second) / cfg.Rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := range cfg.Sources {
		if n > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return FreshnessResult{}, errors.Join(ctx.Err(), stop())
			}
		}
		url := cfg.sourceURL(n)
		mu.Lock()
		published[url] = time.Now()
		mu.Unlock()
		if _, err := pub.Publish(ctx, producers.Source{ID: "w3-" + strconv.Itoa(n), URL: url}); err != nil {
			return FreshnessResult{}, errors.Join(fmt.Errorf("freshness: %w", err), stop())
		}
	}
	drain := time.NewTimer(cfg.Drain)
	defer drain.Stop()
	select {
	case <-all:
	case <-drain.C:
	case <-ctx.Done():
	}
	if err := stop(); err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: stages: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return FreshnessResult{}, fmt.Errorf("freshness: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(committed) != cfg.Sources {
		return FreshnessResult{}, fmt.Errorf("freshness: %d of %d sources in a chunk after %s", len(committed), cfg.Sources, cfg.Drain)
	}
	for url, t := range committed {
		res.Latencies = append(res.Latencies, t.Sub(published[url]))
	}
	slices.Sort(res.Latencies)
	if want := int64(cfg.Sources) * int64(cfg.Rows); res.Records != want {
		return res, fmt.Errorf("freshness: %d records in %d chunks, want %d: %w", res.Records, res.Chunks, want, ErrRecords)
	}
	return res, nil
}
