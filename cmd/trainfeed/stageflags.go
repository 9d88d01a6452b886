package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// stageFlags are the flags that shape the fetch, transform and combine
// stages of a process: what run and serve share.
type stageFlags struct {
	root      string
	fetch     fetch.Config
	transform transformFlags
	combine   combineFlags
}

// addStageFlags registers the stage flags on fl.
func addStageFlags(fl *pflag.FlagSet) *stageFlags {
	s := &stageFlags{}
	s.combine.add(fl, "out")
	fl.StringVar(&s.root, "root", "", "local files and file:// URLs are allowed only below this folder (default: the current folder)")
	addFetchFlags(fl, &s.fetch)
	s.transform.add(fl)
	return s
}

// config returns the stage configuration the flags describe.
func (s *stageFlags) config() (pipeline.Config, error) {
	var cfg pipeline.Config
	var err error
	root := s.root
	if root == "" {
		if root, err = os.Getwd(); err != nil {
			return cfg, err
		}
	}
	cfg.Fetch = s.fetch
	cfg.Fetch.Root = root
	if err := s.transform.apply(&cfg.Transform); err != nil {
		return cfg, err
	}
	if err := s.combine.apply(&cfg.Combine); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// transformFlags are the flags of the transform stage.
type transformFlags struct {
	strict     bool
	transforms string
	maxBadRows string
}

func (t *transformFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&t.strict, "strict", false, "fail a source at its first malformed row instead of skipping the row")
	fl.StringVar(&t.maxBadRows, "max-bad-rows", transform.DefaultMaxBadRows.String(),
		"fail a source that skips more malformed rows than this: a count (100) or a percentage of the rows read (10%; 100% never fails)")
	fl.StringVar(&t.transforms, "transforms", "", "transform specs: a folder of <dataset>.yaml|.yml|.json files, or one file for every dataset (docs/transforms.md)")
}

// apply sets the transform configuration the flags describe.
func (t *transformFlags) apply(c *transform.Config) error {
	c.Strict = t.strict
	limit, err := transform.ParseBadRows(t.maxBadRows)
	if err != nil {
		return fmt.Errorf("--max-bad-rows: %w", err)
	}
	c.MaxBadRows = limit
	if t.transforms != "" {
		specs, err := spec.LoadSpecs(t.transforms)
		if err != nil {
			return fmt.Errorf("--transforms: %w", err)
		}
		c.Specs = specs
	}
	return nil
}

// combineFlags are the flags of the combine stage.
type combineFlags struct {
	out, format  string
	chunkRecords int
	chunkBytes   byteSize
	maxAge       time.Duration
	mismatch     string
}

// add registers the flags; defaultOut is --out's default ("" makes it required).
func (f *combineFlags) add(fl *pflag.FlagSet, defaultOut string) {
	fl.StringVar(&f.out, "out", defaultOut, "output folder; each dataset is a sub-folder with chunks and manifest.json")
	fl.StringVar(&f.format, "format", "parquet", "chunk format: parquet or jsonl")
	fl.IntVar(&f.chunkRecords, "chunk-records", 10_000, "records per chunk")
	f.chunkBytes = byteSize(combine.DefaultConfig().ChunkBytes)
	fl.Var(&f.chunkBytes, "chunk-bytes", "flush a chunk once its values reach about this size (e.g. 64MiB), whichever of records and bytes comes first")
	fl.DurationVar(&f.maxAge, "max-age", 5*time.Second, "flush a chunk when its oldest record has waited this long")
	fl.StringVar(&f.mismatch, "type-mismatch", string(combine.MismatchWiden),
		"a value its dataset column's type cannot hold unchanged: widen (the column's type widens, earlier chunks are written again), "+
			"null (written as null and counted) or fail (its source fails); "+
			"per dataset with DATASET=POLICY items, comma-separated (fail,scratch=null)")
}

// apply sets the combine configuration the flags describe, from the defaults.
func (f *combineFlags) apply(c *combine.Config) error {
	if f.out == "" {
		return errors.New("--out is required")
	}
	format, err := chunk.ParseFormat(f.format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	if f.chunkRecords < 1 || f.chunkBytes < 1 {
		return fmt.Errorf("--chunk-records %d and --chunk-bytes %s must be positive", f.chunkRecords, &f.chunkBytes)
	}
	*c = combine.DefaultConfig()
	c.Out, c.Format, c.ChunkRecords, c.ChunkBytes, c.MaxAge = f.out, format, f.chunkRecords, int64(f.chunkBytes), f.maxAge
	for _, item := range strings.Split(f.mismatch, ",") {
		ds, policy, perDataset := strings.Cut(strings.TrimSpace(item), "=")
		if !perDataset {
			ds, policy = "", ds
		}
		switch m := combine.Mismatch(policy); {
		case m != combine.MismatchWiden && m != combine.MismatchNull && m != combine.MismatchFail:
			return fmt.Errorf("--type-mismatch %q: want widen, null or fail, or DATASET=POLICY items, comma-separated", f.mismatch)
		case !perDataset:
			c.Mismatch = m
		default:
			if c.MismatchFor == nil {
				c.MismatchFor = map[string]combine.Mismatch{}
			}
			c.MismatchFor[ds] = m
		}
	}
	return nil
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
	fl.Var(ackWaitFlag{&c}, "ack-wait", "how long a member may hold a message without a sign of life before it goes to another member (every stage)")
	return &c
}

// ackWaitFlag sets the AckWait of every stage's consumer. It is a topology
// flag: every command that ensures the topology must set the same, or each
// start would undo the last one's.
type ackWaitFlag struct{ c *topology.Config }

func (f ackWaitFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration, e.g. 30s or 2m", s)
	}
	f.c.Fetch.AckWait, f.c.Transform.AckWait, f.c.Combine.AckWait = d, d, d
	return nil
}

func (f ackWaitFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.Fetch.AckWait.String()
}

func (ackWaitFlag) Type() string { return "duration" }

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
