package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/bench"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/producers"
)

// benchWorkloadFlags are the flags of bench's w2 and w3 workloads.
type benchWorkloadFlags struct {
	size           byteSize      // w2
	rate           float64       // w3
	duration       time.Duration // w3
	maxAge         time.Duration // w3
	rawURL, rawDir string        // hidden: run w2's raw loop in this process
}

func (w *benchWorkloadFlags) register(fl *pflag.FlagSet) {
	w.size = 1 << 30
	fl.Var(&w.size, "size", "w2: bytes of the large source (e.g. 256MiB, 1GiB)")
	fl.Float64Var(&w.rate, "rate", 10, "w3: sources published per second")
	fl.DurationVar(&w.duration, "duration", 20*time.Second, "w3: how long sources are published")
	fl.DurationVar(&w.maxAge, "max-age", time.Second, "w3: combine's flush age")
	fl.StringVar(&w.rawURL, "raw-child-url", "", "")
	fl.StringVar(&w.rawDir, "raw-child-dir", "", "")
	_ = fl.MarkHidden("raw-child-url")
	_ = fl.MarkHidden("raw-child-dir")
}

// childResult is what a child process of w2 did.
type childResult struct {
	Elapsed time.Duration
	Records int64
	MaxRSS  int64 // bytes
}

// rawChildOutput is the last line the raw-loop child prints.
type rawChildOutput struct {
	ElapsedNS int64 `json:"elapsed_ns"`
	Records   int64 `json:"records"`
}

// runRawChild runs w2's raw loop in this process and prints its result.
func runRawChild(cmd *cobra.Command, url, dir, format string, chunkRecords int) error {
	f, err := chunk.ParseFormat(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	res, err := bench.RawLoop(cmd.Context(), url, dir, f, chunkRecords)
	if err != nil {
		return err
	}
	return json.NewEncoder(cmd.OutOrStdout()).Encode(rawChildOutput{ElapsedNS: int64(res.Elapsed), Records: res.Records})
}

// runChild runs this executable with args and returns its wall time, its
// stdout and its max RSS.
func runChild(cmd *cobra.Command, args ...string) (time.Duration, []byte, int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, 0, err
	}
	c := exec.CommandContext(cmd.Context(), exe, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	runtime.GC()
	start := time.Now()
	err = c.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%s %s: %w: %s", filepath.Base(exe), args[0], err, bytes.TrimSpace(lastLine(stderr.Bytes())))
	}
	var rss int64
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return elapsed, stdout.Bytes(), rss, nil
}

// runW2 times one large source through the raw loop and `trainfeed run`,
// each in a child process.
func runW2(cmd *cobra.Command, w benchWorkloadFlags, f chunk.Format, chunkRecords int, cpuProfile string) error {
	log := cmd.ErrOrStderr()
	srv, err := bench.StartLargeServer(cmd.Context(), int64(w.size))
	if err != nil {
		return err
	}
	defer srv.Close()
	url := srv.URL + bench.LargePath
	fmt.Fprintf(log, "bench w2: %s, %d bytes, %d rows, %s chunks of %d records, GOMAXPROCS %d, %s %s/%s\n",
		url, srv.Bytes, srv.Rows, f, chunkRecords, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	common := []string{"--format", string(f), "--chunk-records", strconv.Itoa(chunkRecords)}

	// check checks that a way's run stored every record, and logs it.
	check := func(way string, r childResult) error {
		if r.Records != srv.Rows {
			return fmt.Errorf("w2 %s: %d records, want %d: %w", way, r.Records, srv.Rows, bench.ErrRecords)
		}
		fmt.Fprintf(log, "w2 %-9s %8.3fs  %d records, max RSS %d MB\n", way, r.Elapsed.Seconds(), r.Records, r.MaxRSS>>20)
		return nil
	}
	raw, err := w2Raw(cmd, url, common)
	if err == nil {
		err = check("raw loop", raw)
	}
	if err != nil {
		return err
	}
	tfArgs := common
	if cpuProfile != "" {
		tfArgs = append(slices.Clone(common), "--cpuprofile", cpuProfile)
	}
	tf, err := w2Trainfeed(cmd, url, tfArgs)
	if err == nil {
		err = check("trainfeed", tf)
	}
	if err != nil {
		return err
	}

	mbps := func(d time.Duration) float64 { return float64(srv.Bytes) / 1e6 / d.Seconds() }
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "way\tbytes\trecords\ts\tMB/s\tmax RSS MB\tthroughput vs raw\t")
	fmt.Fprintf(tw, "raw loop\t%d\t%d\t%.3f\t%.1f\t%d\t%.0f%%\t\n", srv.Bytes, raw.Records, raw.Elapsed.Seconds(), mbps(raw.Elapsed), raw.MaxRSS>>20, 100.0)
	fmt.Fprintf(tw, "trainfeed\t%d\t%d\t%.3f\t%.1f\t%d\t%.0f%%\t\n", srv.Bytes, tf.Records, tf.Elapsed.Seconds(), mbps(tf.Elapsed), tf.MaxRSS>>20,
		100*raw.Elapsed.Seconds()/tf.Elapsed.Seconds())
	return tw.Flush()
}

// w2Raw runs the raw loop in a child; its time is the loop's own, without
// the child's start.
func w2Raw(cmd *cobra.Command, url string, common []string) (childResult, error) {
	dir, err := os.MkdirTemp("", "trainfeed-bench-raw-*")
	if err != nil {
		return childResult{}, err
	}
	defer os.RemoveAll(dir)
	_, out, rss, err := runChild(cmd, append([]string{"bench", "--raw-child-url", url, "--raw-child-dir", dir}, common...)...)
	if err != nil {
		return childResult{}, err
	}
	var o rawChildOutput
	if err := json.Unmarshal(lastLine(out), &o); err != nil {
		return childResult{}, fmt.Errorf("w2 raw loop: last line: %w", err)
	}
	return childResult{Elapsed: time.Duration(o.ElapsedNS), Records: o.Records, MaxRSS: rss}, nil
}

// w2Trainfeed runs `trainfeed run` on a one-line sources file in a child;
// its time is the child's wall time, start and stop included.
func w2Trainfeed(cmd *cobra.Command, url string, common []string) (childResult, error) {
	dir, err := os.MkdirTemp("", "trainfeed-bench-run-*")
	if err != nil {
		return childResult{}, err
	}
	defer os.RemoveAll(dir)
	list, out := filepath.Join(dir, "sources.txt"), filepath.Join(dir, "out")
	if err := os.WriteFile(list, []byte(url+"\n"), 0o644); err != nil {
		return childResult{}, err
	}
	elapsed, _, rss, err := runChild(cmd, append([]string{"run", "--quiet", "--sources", list, "--out", out,
		"--allow-hosts", "127.0.0.1", "--root", dir}, common...)...)
	if err != nil {
		return childResult{}, err
	}
	m, err := dataset.ReadManifest(out, producers.DefaultDataset)
	if err != nil {
		return childResult{}, fmt.Errorf("w2 trainfeed: %w", err)
	}
	return childResult{Elapsed: elapsed, Records: m.Records, MaxRSS: rss}, nil
}

// runW3 publishes a steady stream of sources into running stages and prints
// the freshness quantiles.
func runW3(cmd *cobra.Command, w benchWorkloadFlags, base bench.Config) error {
	if w.rate <= 0 || w.duration <= 0 {
		return errors.New("--rate and --duration must be positive")
	}
	n := max(1, int(w.rate*w.duration.Seconds()))
	cfg := bench.FreshnessConfig{Config: base, Rate: w.rate, MaxAge: w.maxAge}
	cfg.Sources = n
	srv, err := bench.StartServer(cmd.Context(), cfg.Config)
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.Warm(n)
	dir, err := os.MkdirTemp("", "trainfeed-bench-w3-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.URL, cfg.Dir = srv.URL, dir
	fmt.Fprintf(cmd.ErrOrStderr(), "bench w3: %d sources of %d rows at %g/s, max age %s, %s chunks of %d records, GOMAXPROCS %d, %s\n",
		n, base.Rows, w.rate, w.maxAge, base.Format, base.ChunkRecords, runtime.GOMAXPROCS(0), runtime.Version())
	res, err := bench.Freshness(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sources\trate/s\tmax age\tchunks\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	fmt.Fprintf(tw, "%d\t%g\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", len(res.Latencies), w.rate, w.maxAge, res.Chunks,
		ms(res.Quantile(0.5)), ms(res.Quantile(0.9)), ms(res.Quantile(0.99)), ms(res.Quantile(1)))
	return tw.Flush()
}
