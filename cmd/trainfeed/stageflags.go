package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// stageFlags are the flags that shape the fetch, transform and combine
// stages of a process: what run and serve (and the one-stage commands)
// share.
type stageFlags struct {
	out, format, root, transforms string
	chunkRecords                  int
	maxAge                        time.Duration
	strict                        bool
	fetch                         fetch.Config
}

// addStageFlags registers the stage flags on fl.
func addStageFlags(fl *pflag.FlagSet) *stageFlags {
	s := &stageFlags{}
	fl.StringVar(&s.out, "out", "out", "output folder; each dataset is a sub-folder with chunks and manifest.json")
	fl.StringVar(&s.format, "format", "parquet", "chunk format: parquet or jsonl")
	fl.IntVar(&s.chunkRecords, "chunk-records", 10_000, "records per chunk")
	fl.DurationVar(&s.maxAge, "max-age", 5*time.Second, "flush a chunk when its oldest record has waited this long")
	fl.StringVar(&s.root, "root", "", "local files and file:// URLs are allowed only below this folder (default: the current folder)")
	addFetchFlags(fl, &s.fetch)
	fl.BoolVar(&s.strict, "strict", false, "fail a source at its first malformed row instead of skipping the row")
	fl.StringVar(&s.transforms, "transforms", "", "transform specs: a folder of <dataset>.yaml|.yml|.json files, or one file for every dataset (docs/transforms.md)")
	return s
}

// config returns the stage configuration the flags describe.
func (s *stageFlags) config() (pipeline.Config, error) {
	var cfg pipeline.Config
	f, err := chunk.ParseFormat(s.format)
	if err != nil {
		return cfg, fmt.Errorf("--format: %w", err)
	}
	root := s.root
	if root == "" {
		if root, err = os.Getwd(); err != nil {
			return cfg, err
		}
	}
	cfg.Fetch = s.fetch
	cfg.Fetch.Root = root
	cfg.Transform.Strict = s.strict
	if s.transforms != "" {
		if cfg.Transform.Specs, err = transform.LoadSpecs(s.transforms); err != nil {
			return cfg, fmt.Errorf("--transforms: %w", err)
		}
	}
	cfg.Combine = combine.DefaultConfig()
	cfg.Combine.Out = s.out
	cfg.Combine.Format = f
	cfg.Combine.ChunkRecords = s.chunkRecords
	cfg.Combine.MaxAge = s.maxAge
	return cfg, nil
}

// addTopologyFlags registers the flags that size streams and stage windows.
// Every process that starts stages applies them to the shared streams and
// consumers; give every process the same ones.
func addTopologyFlags(fl *pflag.FlagSet) *topology.Config {
	c := topology.DefaultConfig()
	fl.Var((*byteSize)(&c.MaxBytes), "max-bytes", "default byte limit of the sources, fetched and records streams (e.g. 512MiB, 1GiB)")
	fl.Var((*byteSize)(&c.Sources.MaxBytes), "sources-max-bytes", "byte limit of the sources stream (default --max-bytes)")
	fl.Int64Var(&c.Sources.MaxMsgs, "sources-max-msgs", 0, "message limit of the sources stream (0: none); it keeps sources for rebuilds, so this bounds what is kept over --sources-max-age")
	fl.DurationVar(&c.Sources.MaxAge, "sources-max-age", topology.DefaultSourcesMaxAge, "how long the sources stream keeps sources for rebuilds")
	fl.Var((*byteSize)(&c.Fetched.MaxBytes), "fetched-max-bytes", "byte limit of the fetched stream (default --max-bytes)")
	fl.Int64Var(&c.Fetched.MaxMsgs, "fetched-max-msgs", 0, "message limit of the fetched stream, between fetch and transform (0: none)")
	fl.Var((*byteSize)(&c.Records.MaxBytes), "records-max-bytes", "byte limit of the records stream (default --max-bytes)")
	fl.Int64Var(&c.Records.MaxMsgs, "records-max-msgs", 0, "message limit of the records stream, between transform and combine (0: none)")
	fl.DurationVar(&c.DLQ.MaxAge, "dlq-max-age", 0, "drop dead letters older than this (0: keep them)")
	fl.IntVar(&c.Fetch.MaxAckPending, "fetch-window", c.Fetch.MaxAckPending, "sources the fetch stage's members may hold at once (ack window)")
	fl.IntVar(&c.Transform.MaxAckPending, "transform-window", c.Transform.MaxAckPending, "bodies the transform stage's members may hold at once (ack window)")
	fl.IntVar(&c.Combine.MaxAckPending, "combine-window", c.Combine.MaxAckPending, "record batches the combine stage's members may hold at once (ack window)")
	return &c
}

// byteSize is an int64 flag that takes sizes such as 512MiB, 1GB or 1048576.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
}

func (b *byteSize) Set(s string) error {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: use bytes or a unit, e.g. 512MiB or 2GB", s)
	}
	*b = byteSize(n * float64(mult))
	return nil
}

func (b *byteSize) String() string {
	if *b == 0 {
		return "0"
	}
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(*b)%u.mult == 0 {
			return strconv.FormatInt(int64(*b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Type() string { return "size" }
