package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/progress"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
	"github.com/trainfeed/trainfeed/producers"
)

func runCmd() *cobra.Command {
	var (
		sources, dataset, store, listen string
		httpAddr                        string
		cpuProfile                      string
		quiet                           bool
		memLimit                        byteSize = pipeline.MemoryLimit
		st                              *stageFlags
		topo                            *topology.Config
	)
	cmd := &cobra.Command{
		Use:   "run --sources FILE --out DIR",
		Short: "Fetch, parse and combine every source of a file into dataset chunks, then exit",
		Long: `run starts an embedded NATS server with JetStream, runs the fetch, transform and
combine stages in this process, publishes each line of the sources file, waits
until every source is in a committed chunk or dead-lettered, prints a summary
and exits 0 only when every source succeeded (1 when some failed, 130 when
interrupted).

A sources line is a URL, a local path, or a JSON object such as
{"url": "https://example.com/a.csv", "dataset": "web", "format": "csv"}
(keys: url, id, dataset, format, records, headers; records is the path of keys
to the array of records in a JSON API response, such as data.items).
Blank lines and lines starting with # are skipped. --sources - reads stdin.

Running the same command again resumes: sources already in the dataset are
recognised and not added twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sources == "" {
				return errors.New("--sources is required")
			}
			stages, err := st.config()
			if err != nil {
				return err
			}
			if store == "" {
				store = filepath.Join(st.combine.out, ".jetstream")
			}
			// The embedded server, the stages and their buffers share this
			// process: a soft limit keeps it in bounds whatever the input.
			if os.Getenv("GOMEMLIMIT") == "" && memLimit > 0 {
				debug.SetMemoryLimit(int64(memLimit))
			}
			entries, err := readSources(sources, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			job := &pipeline.Job{Listen: listen, HTTP: httpAddr, StoreDir: store, Dataset: dataset, Topology: *topo, Stages: stages}
			var bar *progress.Reporter
			if !quiet {
				bar = progress.New(cmd.ErrOrStderr())
				job.Progress, job.ProgressEvery, job.Stages.Observe = bar.Update, bar.Every(), bar.Observe
			}
			started := time.Now()
			sum, err := job.Run(cmd.Context(), entries)
			if bar != nil {
				bar.Finish()
			}
			printSummary(cmd.OutOrStdout(), sum, st.combine.out, stages.Combine.Format)
			printWidenings(cmd.OutOrStdout(), st.combine.out, runDatasets(entries, dataset), started)
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
	fl.StringVar(&dataset, "dataset", producers.DefaultDataset, "dataset of sources that name none")
	fl.StringVar(&store, "store", "", "JetStream store folder of the embedded server (default OUT/.jetstream)")
	fl.StringVar(&listen, "listen", "", "also accept NATS clients (trainfeed follow, nats) on this host:port while running")
	fl.StringVar(&httpAddr, "http", "", "serve /metrics, /healthz and /readyz on this host:port while running (empty: none)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar or lines")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the run to this file")
	fl.Var(&memLimit, "memory-limit", "soft memory limit of the process (GC works harder near it); 0: none; GOMEMLIMIT overrides")
	st = addStageFlags(fl)
	topo = addTopologyFlags(fl)
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
	lost := ""
	if s.Skipped > 0 {
		lost += fmt.Sprintf("; %d malformed rows skipped", s.Skipped)
	}
	if s.Nulled > 0 {
		lost += fmt.Sprintf("; %d values nulled (they did not fit their column's type)", s.Nulled)
	}
	fmt.Fprintf(w, "records: %d in %d chunks (%s, %s)%s\n", s.Records, s.Chunks, out, f, lost)
	fmt.Fprintf(w, "time:    %s\n", s.Elapsed.Round(time.Millisecond))
	printLosses(w, s)
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

// printLosses names each source that is in the dataset with rows skipped
// or values nulled, with its counts and first reasons.
func printLosses(w io.Writer, s pipeline.Summary) {
	header := false
	for _, o := range s.Outcomes {
		if o.Failed || (o.Skipped == 0 && o.Nulled == 0) {
			continue
		}
		if !header {
			fmt.Fprintln(w, "lost on the way:")
			header = true
		}
		fmt.Fprintf(w, "  %s\n", o.URL)
		if o.Skipped > 0 {
			fmt.Fprintf(w, "    skipped %d of %d rows read (%.1f%%)\n", o.Skipped, o.Records+o.Skipped, 100*float64(o.Skipped)/float64(o.Records+o.Skipped))
			for _, sk := range o.Skips {
				fmt.Fprintf(w, "      line %d: %s\n", sk.Line, sk.Reason)
			}
		}
		if o.Nulled > 0 {
			fmt.Fprintf(w, "    %d values written as null: they did not fit their column's type (--type-mismatch)\n", o.Nulled)
		}
	}
}

// runDatasets returns the datasets of entries, sorted; dflt for those
// that name none.
func runDatasets(entries []producers.Entry, dflt string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		ds := cmp.Or(e.Source.Dataset, dflt)
		if e.Err == nil && !seen[ds] {
			seen[ds] = true
			out = append(out, ds)
		}
	}
	slices.Sort(out)
	return out
}

// printWidenings names the columns whose type a commit of this run (one
// since start) widened, so that a reader knows the dataset's earlier
// chunks were written again in the new types.
func printWidenings(w io.Writer, out string, datasets []string, start time.Time) {
	header := false
	for _, ds := range datasets {
		m, err := dataset.ReadManifest(out, ds)
		if err != nil {
			continue
		}
		for i := 1; i < len(m.SchemaVersions); i++ {
			v := m.SchemaVersions[i]
			from := slices.IndexFunc(m.Chunks, func(ch *wire.Chunk) bool { return ch.Seq == v.FromSeq })
			if from < 0 || m.Chunks[from].CreatedAt.Before(start) {
				continue
			}
			was := map[string]wire.Type{}
			for _, f := range m.SchemaVersions[i-1].Schema {
				was[f.Name] = f.Type
			}
			var changed []string
			for _, f := range v.Schema {
				if t, ok := was[f.Name]; ok && t != f.Type {
					changed = append(changed, fmt.Sprintf("%s %s→%s", f.Name, t, f.Type))
				}
			}
			if len(changed) == 0 {
				continue
			}
			if !header {
				fmt.Fprintln(w, "widened (values that did not fit; earlier chunks written again in the new types):")
				header = true
			}
			fmt.Fprintf(w, "  %s: %s (schema version %d, from chunk %d)\n", ds, strings.Join(changed, ", "), v.Version, v.FromSeq)
		}
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
	secrets := &localSecrets{}
	fl.StringVar(&secrets.dir, "secrets-dir", "",
		"folder of the files header values may name as ${file:NAME}; ${env:NAME} reads "+secretEnvPrefix+"NAME (docs/security.md)")
	c.Secrets = secrets
}

// startCPUProfile starts the CPU profiler writing to path and returns what
// stops it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
