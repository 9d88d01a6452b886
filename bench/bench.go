// Package bench measures the job trainfeed replaces — download N CSV sources
// from a slow HTTP server, parse them into typed columns and write dataset
// chunks — done three ways: a sequential script (Sequential), a plain
// in-memory concurrent Go loop (InMemory) and a trainfeed pipeline.Job
// (Trainfeed). Each way runs against a Server on the loopback interface and
// checks that its output holds every record (W1). W2 streams one large
// source from a LargeServer through RawLoop or `trainfeed run`; W3
// (Freshness) times sources published at a steady rate into running stages
// until their chunk is announced. `trainfeed bench` prints the figures side
// by side; BenchmarkW1 reuses the W1 workloads.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Defaults of Config's fields.
const (
	DefaultRows         = 1000
	DefaultLatency      = 50 * time.Millisecond
	DefaultChunkRecords = 10_000
	DefaultWorkers      = 64
)

// ErrRecords reports output that does not hold Sources × Rows records.
var ErrRecords = errors.New("wrong record count")

// Schema is the schema of every source the Server serves, in column order.
var Schema = []wire.Field{
	{Name: "id", Type: wire.TypeInt},
	{Name: "value", Type: wire.TypeFloat},
	{Name: "flag", Type: wire.TypeBool},
	{Name: "name", Type: wire.TypeString},
	{Name: "text", Type: wire.TypeString},
}

// Config describes one run of a workload, and the Server it runs against.
type Config struct {
	// URL is the Server's base URL: source n is URL/src/<n>.csv. Required
	// by the workloads; the Server ignores it.
	URL string
	// Sources is the number of sources: the workloads fetch sources 0 to
	// Sources-1, and the Server serves those and no others. Required.
	Sources int
	// Rows is the number of records of each source. Default 1,000.
	Rows int
	// Latency is how long the Server waits before it sends response
	// headers. Default 50ms; negative means none.
	Latency time.Duration
	// Format is the chunk file format. Default Parquet.
	Format chunk.Format
	// ChunkRecords is the number of records per chunk file. Default 10,000.
	ChunkRecords int
	// Workers is the number of fetching goroutines of InMemory. Default 64.
	Workers int
	// Spec, if set, is the transform every way runs on every batch: the
	// same work in each (SeedSpec is the seed's).
	Spec *spec.Spec
	// Dir is an existing folder the workload writes into: its chunk files,
	// and for Trainfeed the JetStream store too. Required by the workloads.
	Dir string
	// Logger receives Trainfeed's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Result is what a workload did and how long it took.
type Result struct {
	// Elapsed is the wall time of the whole job, from the first request
	// (for Trainfeed, from starting the embedded server) until every chunk
	// is written and everything started is stopped.
	Elapsed time.Duration
	// Records is the number of records in the chunk files written.
	Records int64
	// Files are the chunk files written, in order.
	Files []string
	// CPU is the user and system CPU time of this process while the way
	// ran (Measure sets it): the bench Server's share included, which is
	// the same for every way.
	CPU time.Duration
}

// A Way is one way of doing the job: Sequential, InMemory or Trainfeed.
type Way func(context.Context, Config) (Result, error)

// Measure runs way and sets the CPU time the process spent meanwhile.
func Measure(ctx context.Context, cfg Config, way Way) (Result, error) {
	before := cpuTime()
	res, err := way(ctx, cfg)
	res.CPU = cpuTime() - before
	return res, err
}

// cpuTime returns the user plus system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Rows == 0 {
		c.Rows = DefaultRows
	}
	if c.Latency == 0 {
		c.Latency = DefaultLatency
	}
	if c.Latency < 0 {
		c.Latency = 0
	}
	if c.Format == "" {
		c.Format = chunk.Parquet
	}
	if c.ChunkRecords == 0 {
		c.ChunkRecords = DefaultChunkRecords
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports settings a Server cannot serve.
func (c Config) validate() error {
	if c.Sources < 1 {
		return fmt.Errorf("bench: sources %d must be positive", c.Sources)
	}
	if c.Rows < 1 {
		return fmt.Errorf("bench: rows %d must be positive", c.Rows)
	}
	return nil
}

// makeDirs creates the folders of trainfeed's way under c.Dir: its
// JetStream store, its output and the root of its local files.
func (c Config) makeDirs() (store, out, root string, err error) {
	store, out, root = filepath.Join(c.Dir, "store"), filepath.Join(c.Dir, "out"), filepath.Join(c.Dir, "root")
	for _, dir := range []string{store, out, root} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", "", "", err
		}
	}
	return store, out, root, nil
}

// validateWorkload reports settings a workload cannot run with.
func (c Config) validateWorkload() error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.URL == "" {
		return errors.New("bench: server URL is required")
	}
	if _, err := chunk.ParseFormat(string(c.Format)); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.ChunkRecords < 1 {
		return fmt.Errorf("bench: chunk records %d must be positive", c.ChunkRecords)
	}
	if c.Workers < 1 {
		return fmt.Errorf("bench: workers %d must be positive", c.Workers)
	}
	if c.Dir == "" {
		return errors.New("bench: output folder is required")
	}
	fi, err := os.Stat(c.Dir)
	if err != nil {
		return fmt.Errorf("bench: output folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("bench: output folder %s: not a folder", c.Dir)
	}
	return nil
}

// sourceURL returns the URL of source n.
func (c Config) sourceURL(n int) string {
	return c.URL + "/src/" + strconv.Itoa(n) + ".csv"
}

// check fails with ErrRecords unless the result holds every record.
func (c Config) check(way string, r Result) error {
	if want := int64(c.Sources) * int64(c.Rows); r.Records != want {
		return fmt.Errorf("%s: %d records in %d chunk files, want %d sources × %d rows = %d: %w",
			way, r.Records, len(r.Files), c.Sources, c.Rows, want, ErrRecords)
	}
	return nil
}
