package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/progress"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/producers"
)

func runCmd() *cobra.Command {
	var (
		sources, out, format, dataset, store, root, listen string
		chunkRecords                                       int
		maxAge                                             time.Duration
		quiet                                              bool
		strict                                             bool
		transforms                                         string
		fetchCfg                                           fetch.Config
	)
	cmd := &cobra.Command{
		Use:   "run --sources FILE --out DIR",
		Short: "Fetch, parse and combine every source of a file into dataset chunks, then exit",
		Long: `run starts an embedded NATS server with JetStream, runs the fetch, transform and
combine stages in this process, publishes each line of the sources file, waits
until every source is in a committed chunk or dead-lettered, prints a summary
and exits 0 only when every source succeeded.

A sources line is a URL, a local path, or a JSON object such as
{"url": "https://example.com/a.csv", "dataset": "web", "format": "csv"}.
Blank lines and lines starting with # are skipped. --sources - reads stdin.

Running the same command again resumes: sources already in the dataset are
recognised and not added twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sources == "" {
				return errors.New("--sources is required")
			}
			f, err := chunk.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			if store == "" {
				store = filepath.Join(out, ".jetstream")
			}
			if root == "" {
				if root, err = os.Getwd(); err != nil {
					return err
				}
			}
			entries, err := readSources(sources, cmd.InOrStdin())
			if err != nil {
				return err
			}
			job := &pipeline.Job{
				Listen:   listen,
				StoreDir: store,
				Dataset:  dataset,
				Topology: topology.DefaultConfig(),
			}
			job.Stages.Fetch = fetchCfg
			job.Stages.Transform.Strict = strict
			if transforms != "" {
				if job.Stages.Transform.Specs, err = transform.LoadSpecs(transforms); err != nil {
					return fmt.Errorf("--transforms: %w", err)
				}
			}
			job.Stages.Fetch.Root = root
			job.Stages.Combine = combine.DefaultConfig()
			job.Stages.Combine.Out = out
			job.Stages.Combine.Format = f
			job.Stages.Combine.ChunkRecords = chunkRecords
			job.Stages.Combine.MaxAge = maxAge
			var bar *progress.Reporter
			if !quiet {
				bar = progress.New(cmd.ErrOrStderr())
				job.Progress, job.ProgressEvery, job.Stages.Observe = bar.Update, bar.Every(), bar.Observe
			}
			sum, err := job.Run(cmd.Context(), entries)
			if bar != nil {
				bar.Finish()
			}
			printSummary(cmd.OutOrStdout(), sum, out, f)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "trainfeed run: stopped before every source was done:", err)
				return exitError{code: 130}
			}
			if sum.Failed > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sources, "sources", "", "sources file, one URL, path or JSON object per line (- for stdin)")
	fl.StringVar(&out, "out", "out", "output folder; each dataset is a sub-folder with chunks and manifest.json")
	fl.StringVar(&format, "format", "parquet", "chunk format: parquet or jsonl")
	fl.IntVar(&chunkRecords, "chunk-records", 10_000, "records per chunk")
	fl.DurationVar(&maxAge, "max-age", 5*time.Second, "flush a chunk when its oldest record has waited this long")
	fl.StringVar(&dataset, "dataset", producers.DefaultDataset, "dataset of sources that name none")
	fl.StringVar(&store, "store", "", "JetStream store folder of the embedded server (default OUT/.jetstream)")
	fl.StringVar(&root, "root", "", "local files and file:// URLs are allowed only below this folder (default: the current folder)")
	fl.StringVar(&listen, "listen", "", "also accept NATS clients (trainfeed follow, nats) on this host:port while running")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar or lines")
	addFetchFlags(fl, &fetchCfg)
	fl.BoolVar(&strict, "strict", false, "fail a source at its first malformed row instead of skipping the row")
	fl.StringVar(&transforms, "transforms", "", "transform specs: a folder of <dataset>.yaml|.yml|.json files, or one file for every dataset (docs/transforms.md)")
	return cmd
}

func readSources(name string, stdin io.Reader) ([]producers.Entry, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--sources: %w", err)
		}
		defer f.Close()
		r = f
	}
	entries, err := producers.ReadSources(r)
	if err != nil {
		return nil, fmt.Errorf("--sources %s: %w", name, err)
	}
	return entries, nil
}

func printSummary(w io.Writer, s pipeline.Summary, out string, f chunk.Format) {
	already := ""
	if s.Existing > 0 {
		already = fmt.Sprintf(", %d of them already in the dataset: not added again", s.Existing)
	}
	fmt.Fprintf(w, "sources: %d ok, %d failed (of %d)%s\n", s.OK, s.Failed, s.Sources, already)
	fmt.Fprintf(w, "records: %d in %d chunks (%s, %s)\n", s.Records, s.Chunks, out, f)
	fmt.Fprintf(w, "time:    %s\n", s.Elapsed.Round(time.Millisecond))
	if s.Failed == 0 {
		return
	}
	fmt.Fprintln(w, "failed:")
	for _, o := range s.Outcomes {
		if !o.Failed {
			continue
		}
		attempts := ""
		if o.Attempts > 0 {
			attempts = fmt.Sprintf(" (%d attempts)", o.Attempts)
		}
		fmt.Fprintf(w, "  %s\n    %s: %s%s\n", o.URL, o.Stage, o.Reason, attempts)
	}
}

// addFetchFlags adds the flags that shape the fetch stage (docs/fetch.md).
func addFetchFlags(fl *pflag.FlagSet, c *fetch.Config) {
	fl.BoolVar(&c.AllowPrivate, "allow-private", false,
		"allow sources on private and loopback addresses (link-local and cloud metadata addresses are always refused)")
	fl.StringSliceVar(&c.AllowHosts, "allow-hosts", nil,
		"allow private and loopback addresses for these host names (*.domain for sub-domains), addresses and CIDR networks only")
	fl.DurationVar(&c.CacheTTL, "cache-ttl", 0,
		"reuse a URL's cached body without asking the server while it is younger than this (0: always ask, conditionally)")
	fl.Int64Var(&c.MaxBodyBytes, "max-body", 4<<30, "largest body, in bytes, after gzip decoding")
	fl.IntVar(&c.MaxPerHost, "per-host", 64, "downloads at once from one host (lower it to be polite to hosts you do not own; see also --rate)")
	fl.Float64Var(&c.PerHostRate, "rate", 0, "requests per second to one host (0: no limit)")
	fl.IntVar(&c.MaxInFlight, "in-flight", 256, "downloads at once, over all hosts")
}
