package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/producers"
)

// Trainfeed runs the sources through a pipeline.Job configured as `trainfeed
// run` configures it by default (topology.DefaultConfig, fetch's and
// combine's defaults, a 5s max age, run's memory limit, no progress
// lines; cfg.Spec as the transform of every dataset) plus loopback allowed
// for 127.0.0.1 only, with a fresh JetStream store in
// cfg.Dir/store, chunks under cfg.Dir/out and local files allowed below
// cfg.Dir/root. Elapsed covers the whole Job.Run: starting the embedded
// server, publishing, processing, and stopping everything.
func Trainfeed(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateWorkload(); err != nil {
		return Result{}, err
	}
	store, out, root, err := cfg.makeDirs()
	if err != nil {
		return Result{}, fmt.Errorf("trainfeed: %w", err)
	}
	var list strings.Builder
	for n := range cfg.Sources {
		list.WriteString(cfg.sourceURL(n))
		list.WriteByte('\n')
	}

	start := time.Now()
	entries, err := producers.ReadSources(strings.NewReader(list.String()))
	if err != nil {
		return Result{}, fmt.Errorf("trainfeed: %w", err)
	}
	job := &pipeline.Job{
		StoreDir: store,
		Dataset:  producers.DefaultDataset,
		Topology: topology.DefaultConfig(),
		Logger:   cfg.Logger,
	}
	job.Stages.Fetch.Root = root
	if cfg.Spec != nil {
		job.Stages.Transform.Specs = map[string]*spec.Spec{"*": cfg.Spec}
	}
	// As run: a soft memory limit, unless GOMEMLIMIT sets one. The bench
	// process also holds what run's does not (the Server's cached bodies):
	// the limit is run's on top of that.
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(pipeline.MemoryLimit + liveHeap()))
	}
	// The Server is on loopback, which fetch refuses unless allowed: this is
	// `--allow-hosts 127.0.0.1`, the narrowest allowance that reaches it.
	job.Stages.Fetch.AllowHosts = []string{"127.0.0.1"}
	job.Stages.Combine = combine.DefaultConfig()
	job.Stages.Combine.Out = out
	job.Stages.Combine.Format = cfg.Format
	job.Stages.Combine.ChunkRecords = cfg.ChunkRecords
	job.Stages.Combine.MaxAge = 5 * time.Second // run's --max-age default
	sum, err := job.Run(ctx, entries)
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("trainfeed: %w", err)
	}
	if sum.Failed > 0 || sum.OK != cfg.Sources {
		return Result{}, fmt.Errorf("trainfeed: %d sources ok, %d failed, want %d ok%s", sum.OK, sum.Failed, cfg.Sources, firstFailure(sum))
	}

	m, err := dataset.ReadManifest(out, producers.DefaultDataset)
	if err != nil {
		return Result{}, fmt.Errorf("trainfeed: %w", err)
	}
	res := Result{Elapsed: elapsed, Records: m.Records}
	for _, ch := range m.Chunks {
		res.Files = append(res.Files, filepath.Join(dataset.Dir(out, producers.DefaultDataset), ch.File))
	}
	if sum.Records != m.Records {
		return res, fmt.Errorf("trainfeed: the job counted %d records, the manifest lists %d: %w", sum.Records, m.Records, ErrRecords)
	}
	return res, cfg.check("trainfeed", res)
}

// firstFailure describes the first failed source of s, if any.
func firstFailure(s pipeline.Summary) string {
	for _, o := range s.Outcomes {
		if o.Failed {
			return fmt.Sprintf(" (first: %s: %s: %s)", o.URL, o.Stage, o.Reason)
		}
	}
	return ""
}

// liveHeap returns the bytes the heap holds after a collection: what the
// process keeps whatever the way (the Server's cached bodies).
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
