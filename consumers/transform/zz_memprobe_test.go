package transform_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/producers"
)

func TestMemProbe(t *testing.T) {
	if os.Getenv("MEMPROBE") == "" {
		t.Skip()
	}
	out := t.TempDir()
	job := &pipeline.Job{StoreDir: filepath.Join(out, ".js"), Dataset: "ds", Topology: topology.DefaultConfig()}
	job.Stages.Fetch.Root = "/tmp/mem"
	job.Stages.Combine = combine.DefaultConfig()
	job.Stages.Combine.Out = out
	job.Stages.Combine.Format = chunk.Parquet
	if v := os.Getenv("COMBINE_WINDOW"); v != "" {
		n, _ := strconv.Atoi(v)
		job.Topology.Combine.MaxAckPending = n
	}
	if v := os.Getenv("BATCH_BYTES"); v != "" {
		n, _ := strconv.Atoi(v)
		job.Stages.Transform.MaxBatchBytes = n
	}
	es, _ := producers.ReadSources(strings.NewReader("/tmp/mem/rows.csv\n"))
	done := make(chan struct{})
	go func() {
		var maxInuse uint64
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > maxInuse+20<<20 {
				maxInuse = ms.HeapInuse
				f, _ := os.Create("/tmp/mem/heap.prof")
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
				t.Logf("heap inuse %d MiB sys %d MiB", ms.HeapInuse>>20, ms.Sys>>20)
			}
		}
	}()
	sum, err := job.Run(context.Background(), es)
	close(done)
	st, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "VmHWM") {
			t.Log(l)
		}
	}
	t.Logf("%+v %v", sum.Records, err)
	if os.Getenv("CHECKIDS") != "" {
		rows := readParquetDataset(t, out, "ds")
		for id := int64(0); id < 2_000_000; id++ {
			if len(rows[id]) != 1 {
				t.Fatalf("id %d: %d rows", id, len(rows[id]))
			}
		}
		t.Logf("all %d ids once", len(rows))
	}
}
