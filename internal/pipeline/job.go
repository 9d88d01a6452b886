package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
	"github.com/trainfeed/trainfeed/producers"
)

// MemoryLimit is the soft memory limit `trainfeed run` sets for its
// process (the embedded server, the stages and their buffers): the GC
// works harder near it, so memory stays in bounds whatever the input.
const MemoryLimit = 180 << 20

// Job is one `trainfeed run`: an embedded JetStream, the three stages, a
// list of sources published and followed to their end.
type Job struct {
	// StoreDir holds the embedded server's JetStream files.
	StoreDir string
	// HTTP, if set, is host:port where the job serves /metrics, /healthz
	// and /readyz while it runs (metrics.OpsMux).
	HTTP string
	// Listen, if set, is host:port where the embedded server accepts other
	// processes (trainfeed follow, NATS clients) while the job runs.
	Listen string
	// Dataset is the dataset of sources that name none.
	Dataset  string
	Topology topology.Config
	Stages   Config
	// Progress, if set, is called every ProgressEvery while the job runs.
	Progress      func(done, total int, records int64)
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// Run starts everything, publishes the entries (bad ones fail at once),
// waits until each source is in a chunk or dead-lettered, stops everything
// cleanly and returns the summary. If ctx ends first it stops the same way
// and returns the summary so far with ctx's error.
func (j *Job) Run(ctx context.Context, entries []producers.Entry) (Summary, error) {
	if j.Logger == nil {
		j.Logger = slog.Default()
	}
	j.Stages.Logger = j.Logger
	// This process is the only member of every stage: what a crashed run
	// left unacknowledged can be taken back now instead of after AckWait.
	node, err := Connect(ctx, NodeConfig{StoreDir: j.StoreDir, Listen: j.Listen, Topology: j.Topology, Reclaim: true, Logger: j.Logger})
	if err != nil {
		return Summary{}, err
	}
	defer node.Close()
	var m *metrics.Metrics
	if j.HTTP != "" {
		m = metrics.New(metrics.Config{JS: node.JS})
		observe, onCommit := j.Stages.Observe, j.Stages.Combine.OnCommit
		j.Stages.Observe = func(stage string, msg *runner.Msg, o runner.Outcome, took time.Duration) {
			m.Observe(stage, msg, o, took)
			if observe != nil {
				observe(stage, msg, o, took)
			}
		}
		j.Stages.Combine.OnCommit = func(ch *wire.Chunk) {
			m.Committed(ch)
			if onCommit != nil {
				onCommit(ch)
			}
		}
	}
	if err := node.Prepare(j.Stages); err != nil {
		return Summary{}, err
	}
	js, stages := node.JS, node.Stages
	if m != nil {
		for _, s := range metrics.Stages {
			m.AddRunner(s, stages.Runner(s))
		}
		ops, err := metrics.Listen(j.HTTP, metrics.OpsMux(m, node.Ready))
		if err != nil {
			return Summary{}, err
		}
		defer func() {
			if err := ops.Close(5 * time.Second); err != nil {
				j.Logger.Warn("http", "err", err)
			}
		}()
	}
	pub, err := producers.NewPublisher(js, j.Dataset)
	if err != nil {
		return Summary{}, err
	}
	// Every run fetches its sources again: a body that changed since an
	// earlier run is added, however soon after it this one starts.
	pub = pub.Scoped(nuid.Next())

	// Sources get IDs stable across runs of the same file, so a rerun (after
	// a crash, say) adds no unchanged body twice.
	tracked := make([]Tracked, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.Source.Dataset == "" {
			e.Source.Dataset = j.Dataset
		}
		if e.Source.ID == "" {
			e.Source.ID = producers.StableID(e.Source.Dataset, e.Source.URL, e.Line)
		}
		url := e.Source.URL
		if url == "" {
			url = e.Text
		}
		tracked = append(tracked, Tracked{ID: e.Source.ID, Dataset: e.Source.Dataset, URL: url})
	}
	tracker := NewTracker(js, tracked)
	if err := tracker.Start(ctx); err != nil {
		return Summary{}, err
	}

	// The stages outlive ctx so they can drain; if they stop by themselves,
	// the wait ends with their error.
	waitCtx, cancelWait := context.WithCancelCause(ctx)
	defer cancelWait(nil)
	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	stagesDone := make(chan struct{})
	var stagesErr error
	go func() {
		defer close(stagesDone)
		stagesErr = stages.Run(stageCtx)
		if stageCtx.Err() == nil {
			cancelWait(fmt.Errorf("stages stopped: %w", stagesErr))
		}
	}()
	defer func() {
		stopStages()
		<-stagesDone
		if stagesErr != nil {
			j.Logger.Error("stages", "err", stagesErr)
		}
	}()

	var wg sync.WaitGroup // publishing, flushing and progress
	wg.Go(func() { j.publish(waitCtx, pub, entries, tracker) })
	wg.Go(func() { stages.FlushWhenDrained(waitCtx) })

	if j.Progress != nil {
		every := j.ProgressEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					j.Progress(tracker.Progress())
				case <-waitCtx.Done():
					return
				}
			}
		})
	}

	sum, err := tracker.Wait(waitCtx)
	if err != nil {
		err = context.Cause(waitCtx)
	}
	cancelWait(nil)
	wg.Wait()
	return sum, err
}

// publish publishes every valid entry; a bad line or a refused publish fails
// its source at once.
func (j *Job) publish(ctx context.Context, pub *producers.Publisher, entries []producers.Entry, tracker *Tracker) {
	for _, e := range entries {
		if e.Err != nil {
			tracker.Fail(e.Source.ID, "parse", e.Err.Error())
			continue
		}
		err := runner.Retry(ctx, publishRetry, pushesBack, func() error {
			_, err := pub.Publish(ctx, e.Source)
			return err
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			tracker.Fail(e.Source.ID, "publish", err.Error())
		}
	}
}

// publishRetry is how long a run keeps publishing a source into a
// pipeline that pushes back: about a minute.
var publishRetry = runner.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second, Tries: 35}

// pushesBack reports whether a publish failed because the pipeline is full
// (a stream that discards new messages) or slow to answer: worth a retry.
func pushesBack(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) || errors.Is(err, nats.ErrTimeout)
}
