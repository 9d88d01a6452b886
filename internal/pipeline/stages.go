// Package pipeline wires trainfeed's three stages to their consumers and
// follows a set of sources to their end: in a chunk, or dead-lettered.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// Config configures the stages that run in this process.
type Config struct {
	Fetch     fetch.Config
	Transform transform.Config
	Combine   combine.Config
	// FetchWorkers, TransformWorkers: handler goroutines per stage. Defaults:
	// the fetch window (I/O bound) and GOMAXPROCS (CPU bound).
	FetchWorkers, TransformWorkers int
	// Stages to run: any of "fetch", "transform", "combine". Empty: all
	// three. "none" alone: no stage (serve as an HTTP API only).
	Stages []string
	Logger *slog.Logger
	// Observe, if set, is called once per message a stage handled (metrics,
	// progress); see runner.Config.Observe.
	Observe func(stage string, m *runner.Msg, outcome runner.Outcome, took time.Duration)
}

// Stages is a set of stage runners sharing one topology.
type Stages struct {
	topo     *topology.Topology
	runners  map[string]*runner.Runner
	combiner *combine.Combiner
	fetcher  *fetch.Handler
}

// New builds the runners of the configured stages; it starts nothing.
func New(t *topology.Topology, cfg Config) (*Stages, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	want := map[string]bool{}
	for _, s := range cfg.Stages {
		want[s] = true
	}
	s := &Stages{topo: t, runners: map[string]*runner.Runner{}}
	if want[StagesNone] {
		if len(want) > 1 {
			return nil, fmt.Errorf("stages: %q runs no stage and goes alone", StagesNone)
		}
		return s, nil
	}
	all := len(want) == 0
	add := func(stage string, h runner.Handler, workers int, annotate runner.DeadLetterFunc) error {
		var observe func(*runner.Msg, runner.Outcome, time.Duration)
		if cfg.Observe != nil {
			observe = func(m *runner.Msg, o runner.Outcome, took time.Duration) { cfg.Observe(stage, m, o, took) }
		}
		// Record batches are large (up to ~1 MiB): bound what the client
		// buffers for the stages that pull them by bytes too.
		pullBytes := 0
		if stage == topology.ConsumerCombine {
			pullBytes = 8 << 20
		}
		r, err := runner.New(t.JS, t.ConsumerOf(stage), h, runner.Config{
			Stage: stage, Workers: workers, Annotate: annotate, Logger: cfg.Logger, Observe: observe,
			PullMaxBytes: pullBytes,
		})
		if err != nil {
			return err
		}
		s.runners[stage] = r
		return nil
	}
	if all || want[topology.ConsumerFetch] {
		if cfg.Fetch.Logger == nil {
			cfg.Fetch.Logger = cfg.Logger
		}
		h, err := fetch.New(t.JS, t.Bodies, t.Cache, cfg.Fetch)
		if err != nil {
			return nil, err
		}
		s.fetcher = h
		if err := add(topology.ConsumerFetch, h, cfg.FetchWorkers, h.Annotate); err != nil {
			return nil, err
		}
	}
	if all || want[topology.ConsumerTransform] {
		if cfg.Transform.Logger == nil {
			cfg.Transform.Logger = cfg.Logger
		}
		h, err := transform.New(t.JS, t.Bodies, cfg.Transform)
		if err != nil {
			return nil, err
		}
		workers := cfg.TransformWorkers
		if workers == 0 {
			workers = 4 * runtime.GOMAXPROCS(0)
		}
		if err := add(topology.ConsumerTransform, h, workers, h.Annotate); err != nil {
			return nil, err
		}
	}
	if all || want[topology.ConsumerCombine] {
		cfg.Combine.Logger = cfg.Logger
		c, err := combine.New(t.JS, t.Manifest, t.Chunks, cfg.Combine)
		if err != nil {
			return nil, err
		}
		s.combiner = c
		if err := add(topology.ConsumerCombine, runner.HandlerFunc(c.Handle), 0, c.Annotate); err != nil {
			return nil, err
		}
	}
	for stage := range want {
		if stage != topology.ConsumerFetch && stage != topology.ConsumerTransform && stage != topology.ConsumerCombine {
			return nil, fmt.Errorf("unknown stage %q: want fetch, transform or combine", stage)
		}
	}
	return s, nil
}

// Runner returns the runner of a stage, or nil when it does not run here.
func (s *Stages) Runner(stage string) *runner.Runner { return s.runners[stage] }

// StagesNone, as the only entry of Config.Stages, runs no stage.
const StagesNone = "none"

// Run runs every stage until ctx ends, then drains them: in-flight work is
// finished and acked or handed back. Without stages it waits for ctx.
func (s *Stages) Run(ctx context.Context) error {
	if len(s.runners) == 0 && s.combiner == nil {
		<-ctx.Done()
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	for stage, r := range s.runners {
		g.Go(func() error {
			if err := r.Run(ctx); err != nil {
				return fmt.Errorf("%s: %w", stage, err)
			}
			return nil
		})
	}
	if s.combiner != nil {
		g.Go(func() (err error) {
			// Its flushes run here: they are combine's work too in a profile.
			pprof.Do(ctx, pprof.Labels("stage", topology.ConsumerCombine), func(ctx context.Context) { err = s.combiner.Run(ctx) })
			return err
		})
	}
	err := g.Wait()
	if s.fetcher != nil {
		s.fetcher.Close()
	}
	return err
}

// How often FlushWhenDrained looks at the stages.
const (
	drainPoll    = 10 * time.Millisecond
	drainPollMax = 500 * time.Millisecond
)

// FlushWhenDrained has combine commit its filling chunks as soon as the
// pipeline has drained — no source waits to be fetched or transformed and
// every record batch has reached combine — instead of after its idle time,
// until ctx ends. It needs all three stages in this process; `run` uses it
// so the last chunk does not wait for a timer.
func (s *Stages) FlushWhenDrained(ctx context.Context) {
	fetch, transform, comb := s.runners[topology.ConsumerFetch], s.runners[topology.ConsumerTransform], s.runners[topology.ConsumerCombine]
	if fetch == nil || transform == nil || comb == nil {
		return
	}
	// While a source waits to be retried the stages are idle but not
	// drained: look less often then, up to every drainPollMax.
	every := drainPoll
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// Cheap checks first: consumer info is a request.
		switch {
		case fetch.Stats().InFlight.Load() > 0 || transform.Stats().InFlight.Load() > 0 || !s.combiner.Filling():
			every = drainPoll
		case s.drained(ctx, comb.Stats().InFlight.Load()):
			s.combiner.Flush()
			every = drainPoll
		default:
			every = min(2*every, drainPollMax)
		}
		timer.Reset(every)
	}
}

// drained reports whether the fetch and transform consumers have nothing
// pending or unacknowledged and combine holds every batch delivered to it.
func (s *Stages) drained(ctx context.Context, combining int64) bool {
	for _, stage := range []string{topology.ConsumerFetch, topology.ConsumerTransform, topology.ConsumerCombine} {
		info, err := s.topo.ConsumerOf(stage).Info(ctx)
		if err != nil {
			return false
		}
		switch {
		case info.NumPending > 0:
			return false
		case stage == topology.ConsumerCombine && int64(info.NumAckPending) != combining:
			return false
		case stage != topology.ConsumerCombine && info.NumAckPending > 0:
			return false
		}
	}
	return true
}
