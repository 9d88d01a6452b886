package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/bench"
	"github.com/trainfeed/trainfeed/internal/chunk"
)

// seqMeasuredMax is the largest N the sequential baseline runs at unless
// --skip-sequential=false; above it, it is estimated.
const seqMeasuredMax = 100

func benchCmd() *cobra.Command {
	var (
		sourcesList, format, cpuProfile, pythonBin, pythonScript string
		rows, chunkRecords                                       int
		latency                                                  time.Duration
		skipSequential, python                                   bool
		transformName                                            string
		workers                                                  int
		workload                                                 string
		w                                                        benchWorkloadFlags
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time the job trainfeed replaces: sequential, in-memory Go loop and trainfeed, side by side",
		Long: `bench runs one of three workloads (--workload).

w1, the default, serves N CSV sources of --rows records from a loopback HTTP
server that waits --latency before each response, and for each N of --sources
turns them into chunks of --chunk-records records three ways, each running
the same --transform on every batch (default seed: trim, drop_empty, lower,
tokens, log1p, as the pipeline trainfeed replaces does):

  sequential  one source after another: GET, encoding/csv + strconv, then
              write all chunks at the end;
  in-memory   a plain concurrent Go loop without a broker: 64 fetching
              goroutines, parse.Parse, one combiner writing chunks;
  trainfeed   a pipeline.Job as 'trainfeed run' runs it, with a fresh
              embedded JetStream store.

Every way must write N × rows records. The sequential way runs only up to
N = 100 unless --skip-sequential=false; above that it is estimated from the
per-source time of the largest N measured, and marked "est.". The ms/source
columns compare N's: time per source should not grow with N.

w2 serves one large CSV source of --size bytes (generated as it is sent) and
times a raw GET → parse.Parse → chunk.Write loop and 'trainfeed run',
each in its own child process so their max RSS can be read; it prints the
throughput of each, their ratio and both max RSS.

w3 runs the stages in this process against an embedded server and publishes
--rate sources per second for --duration with combine's --max-age; it prints
the p50, p90, p99 and max of the time from each source's publish to the chunk
event of the chunk holding it (sent after the manifest commit).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if w.rawURL != "" { // W2's raw loop, in its own process
				return runRawChild(cmd, w.rawURL, w.rawDir, format, chunkRecords)
			}
			ns, err := parseSources(sourcesList)
			if err != nil {
				return err
			}
			f, err := chunk.ParseFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			if rows < 1 || chunkRecords < 1 {
				return errors.New("--rows and --chunk-records must be positive")
			}
			if latency <= 0 {
				latency = -1 // bench.Config: none
			}
			switch workload {
			case "w1":
			case "w2":
				return runW2(cmd, w, f, chunkRecords, cpuProfile)
			case "w3":
				return runW3(cmd, w, bench.Config{Rows: rows, Latency: latency, Format: f, ChunkRecords: chunkRecords})
			default:
				return fmt.Errorf("--workload %q: want w1, w2 or w3", workload)
			}
			base := bench.Config{Rows: rows, Latency: latency, Format: f, ChunkRecords: chunkRecords, Workers: workers}
			switch transformName {
			case "seed":
				base.Spec = bench.SeedSpec()
			case "none":
			default:
				return fmt.Errorf("--transform %q: want seed or none", transformName)
			}
			if workers < 1 {
				return errors.New("--workers must be positive")
			}
			r := &benchRun{
				ctx:    cmd.Context(),
				log:    cmd.ErrOrStderr(),
				base:   base,
				skip:   skipSequential,
				pprof:  cpuProfile,
				script: pythonScript,
			}
			if python {
				r.python, err = findPython(r.ctx, pythonBin, cmd.Flags().Changed("python-bin"))
				if err != nil {
					fmt.Fprintf(r.log, "python: skipped: %v\n", err)
				} else if _, err := os.Stat(pythonScript); err != nil {
					fmt.Fprintf(r.log, "python: skipped: %v\n", err)
					r.python = ""
				}
			}
			return r.run(cmd.OutOrStdout(), ns)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&workload, "workload", "w1", "w1: N small sources; w2: one large source (throughput, max RSS); w3: freshness of a steady stream")
	fl.StringVar(&sourcesList, "sources", "10,100,1000", "w1: comma-separated source counts N (up to 10000 and more; sequential is estimated above 100)")
	fl.IntVar(&rows, "rows", bench.DefaultRows, "CSV records per source")
	fl.DurationVar(&latency, "latency", bench.DefaultLatency, "server wait before each response's headers")
	fl.StringVar(&format, "format", "parquet", "chunk format: parquet or jsonl")
	fl.IntVar(&chunkRecords, "chunk-records", bench.DefaultChunkRecords, "records per chunk")
	fl.StringVar(&transformName, "transform", "seed", "w1: the transform every way runs: seed (trim, drop_empty, lower, tokens, log1p) or none")
	fl.IntVar(&workers, "workers", bench.DefaultWorkers, "w1: fetching goroutines of the in-memory way")
	fl.BoolVar(&skipSequential, "skip-sequential", true,
		fmt.Sprintf("estimate the sequential baseline for N > %d instead of running it; =false runs it for every N", seqMeasuredMax))
	fl.BoolVar(&python, "python", false, "also run the asyncio + aiohttp baseline (needs python3 with aiohttp)")
	fl.StringVar(&pythonBin, "python-bin", "python3", "Python interpreter for --python (default: python3, else /usr/bin/python3)")
	fl.StringVar(&pythonScript, "python-script", filepath.Join("bench", "asyncio_baseline.py"), "the Python baseline script")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the trainfeed run (w1: at the largest N) to this file")
	w.register(fl)
	return cmd
}

func parseSources(list string) ([]int, error) {
	var ns []int
	for s := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--sources %q: want positive integers separated by commas", list)
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return slices.Compact(ns), nil
}

// findPython returns an interpreter that can import aiohttp: bin, or when bin
// was not chosen explicitly, Debian's /usr/bin/python3 as a fallback.
func findPython(ctx context.Context, bin string, explicit bool) (string, error) {
	candidates := []string{bin}
	if !explicit && bin != "/usr/bin/python3" {
		candidates = append(candidates, "/usr/bin/python3")
	}
	var errs []error
	for _, c := range candidates {
		out, err := exec.CommandContext(ctx, c, "-c", "import aiohttp").CombinedOutput()
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s -c 'import aiohttp': %w: %s", c, err, bytes.TrimSpace(lastLine(out))))
	}
	return "", errors.Join(errs...)
}

// benchRun is one `trainfeed bench`.
type benchRun struct {
	ctx    context.Context
	log    io.Writer
	base   bench.Config
	skip   bool
	pprof  string
	python string // interpreter, "" when not running the Python baseline
	script string
	srv    *bench.Server
}

// benchRow is one line of the table.
type benchRow struct {
	n                int
	seq, mem, tf, py time.Duration
	memCPU, tfCPU    time.Duration // CPU seconds of the in-memory and trainfeed ways
	seqEstimated     bool
	seqFrom          int // N the estimate is made from
	tfRecords        int64
	pyErr            error
}

func (r *benchRun) run(w io.Writer, ns []int) error {
	maxN := ns[len(ns)-1]
	calibrate := 0 // N of a sequential run made only to estimate larger ones
	if r.skip && ns[0] > seqMeasuredMax {
		calibrate = 10
	}
	srvCfg := r.base
	srvCfg.Sources = max(maxN, calibrate)
	srv, err := bench.StartServer(r.ctx, srvCfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	r.srv = srv

	transform := "none"
	if r.base.Spec != nil {
		transform = "seed"
	}
	fmt.Fprintf(r.log, "bench: server %s, %d rows/source, latency %s, %s chunks of %d records, transform %s, %d in-memory workers, GOMAXPROCS %d, %s %s/%s\n",
		srv.URL, r.base.Rows, max(r.base.Latency, 0), r.base.Format, r.base.ChunkRecords, transform, r.base.Workers, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)

	var perSource time.Duration // sequential time per source at the largest N measured ≤ 100
	var perSourceN int
	if calibrate > 0 {
		res, err := r.way("sequential", calibrate, bench.Sequential)
		if err != nil {
			return err
		}
		perSource, perSourceN = res.Elapsed/time.Duration(calibrate), calibrate
	}
	var rows []benchRow
	for _, n := range ns {
		srv.Warm(n)
		row := benchRow{n: n}
		if !r.skip || n <= seqMeasuredMax {
			res, err := r.way("sequential", n, bench.Sequential)
			if err != nil {
				return err
			}
			row.seq = res.Elapsed
			if n <= seqMeasuredMax {
				perSource, perSourceN = res.Elapsed/time.Duration(n), n
			}
		} else {
			row.seq, row.seqEstimated, row.seqFrom = perSource*time.Duration(n), true, perSourceN
		}
		res, err := r.way("in-memory", n, bench.InMemory)
		if err != nil {
			return err
		}
		row.mem, row.memCPU = res.Elapsed, res.CPU
		res, err = r.trainfeed(n, n == maxN)
		if err != nil {
			return err
		}
		row.tf, row.tfCPU, row.tfRecords = res.Elapsed, res.CPU, res.Records
		if r.python != "" {
			row.py, row.pyErr = r.runPython(n)
			if row.pyErr != nil {
				fmt.Fprintf(r.log, "N=%d python: %v\n", n, row.pyErr)
			}
		}
		rows = append(rows, row)
	}
	r.printTable(w, rows)
	return nil
}

// way runs one workload at N in a fresh temp folder it removes afterwards.
func (r *benchRun) way(name string, n int, f bench.Way) (bench.Result, error) {
	dir, err := os.MkdirTemp("", "trainfeed-bench-"+name+"-*")
	if err != nil {
		return bench.Result{}, err
	}
	defer os.RemoveAll(dir)
	cfg := r.base
	cfg.URL, cfg.Sources, cfg.Dir = r.srv.URL, n, dir
	runtime.GC() // start every way from a collected heap
	res, err := bench.Measure(r.ctx, cfg, f)
	if err != nil {
		return res, fmt.Errorf("N=%d %s: %w", n, name, err)
	}
	fmt.Fprintf(r.log, "N=%d %-10s %8.3fs  %7.3f CPU s  %d records in %d chunks\n", n, name, res.Elapsed.Seconds(), res.CPU.Seconds(), res.Records, len(res.Files))
	return res, nil
}

// trainfeed runs the trainfeed way, under the CPU profiler when asked.
func (r *benchRun) trainfeed(n int, profile bool) (bench.Result, error) {
	if !profile || r.pprof == "" {
		return r.way("trainfeed", n, bench.Trainfeed)
	}
	f, err := os.Create(r.pprof)
	if err != nil {
		return bench.Result{}, fmt.Errorf("--cpuprofile: %w", err)
	}
	defer f.Close()
	res, err := r.way("trainfeed", n, func(ctx context.Context, cfg bench.Config) (bench.Result, error) {
		if err := pprof.StartCPUProfile(f); err != nil {
			return bench.Result{}, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
		return bench.Trainfeed(ctx, cfg)
	})
	if err != nil {
		return res, err
	}
	if err := f.Close(); err != nil {
		return res, fmt.Errorf("--cpuprofile: %w", err)
	}
	fmt.Fprintf(r.log, "N=%d trainfeed CPU profile: %s\n", n, r.pprof)
	return res, nil
}

// pythonResult is the last line the Python baseline prints.
type pythonResult struct {
	ElapsedS float64 `json:"elapsed_s"`
	Records  int64   `json:"records"`
	Chunks   int     `json:"chunks"`
}

// runPython runs the asyncio baseline at N and returns the time it reports.
func (r *benchRun) runPython(n int) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "trainfeed-bench-python-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	runtime.GC()
	cmd := exec.CommandContext(r.ctx, r.python, r.script,
		"--url", r.srv.URL, "--sources", strconv.Itoa(n), "--rows", strconv.Itoa(r.base.Rows),
		"--out", dir, "--chunk-records", strconv.Itoa(r.base.ChunkRecords))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", r.script, err, bytes.TrimSpace(lastLine(stderr.Bytes())))
	}
	var res pythonResult
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &res); err != nil {
		return 0, fmt.Errorf("%s: last line: %w", r.script, err)
	}
	if want := int64(n) * int64(r.base.Rows); res.Records != want {
		return 0, fmt.Errorf("%s: %d records, want %d: %w", r.script, res.Records, want, bench.ErrRecords)
	}
	d := time.Duration(res.ElapsedS * float64(time.Second))
	fmt.Fprintf(r.log, "N=%d %-10s %8.3fs  %d records in %d chunks (%s)\n", n, "python", d.Seconds(), res.Records, res.Chunks, r.python)
	return d, nil
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func (r *benchRun) printTable(w io.Writer, rows []benchRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "N\tsequential s\tin-memory s\ttrainfeed s\ttrainfeed/in-memory\tin-memory CPU s\ttrainfeed CPU s\tCPU trainfeed/in-memory\tsequential/trainfeed\ttrainfeed records/s\tin-memory ms/source\ttrainfeed ms/source\t"
	if r.python != "" {
		head += "python s\t"
	}
	fmt.Fprintln(tw, head)
	var estFrom int
	for _, row := range rows {
		seq := fmt.Sprintf("%.3f", row.seq.Seconds())
		if row.seqEstimated {
			seq += " est."
			estFrom = row.seqFrom
		}
		line := fmt.Sprintf("%d\t%s\t%.3f\t%.3f\t%.2fx\t%.3f\t%.3f\t%.2fx\t%.1fx\t%s\t%.3f\t%.3f\t", row.n, seq, row.mem.Seconds(), row.tf.Seconds(),
			row.tf.Seconds()/row.mem.Seconds(), row.memCPU.Seconds(), row.tfCPU.Seconds(), row.tfCPU.Seconds()/row.memCPU.Seconds(),
			row.seq.Seconds()/row.tf.Seconds(),
			thousands(int64(float64(row.tfRecords)/row.tf.Seconds())),
			msPer(row.mem, row.n), msPer(row.tf, row.n))
		if r.python != "" {
			if row.pyErr != nil {
				line += "failed\t"
			} else {
				line += fmt.Sprintf("%.3f\t", row.py.Seconds())
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if estFrom > 0 {
		fmt.Fprintf(w, "est.: N × the sequential time per source measured at N=%d\n", estFrom)
	}
}

// msPer returns d / n in milliseconds.
func msPer(d time.Duration, n int) float64 { return d.Seconds() * 1000 / float64(n) }

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
