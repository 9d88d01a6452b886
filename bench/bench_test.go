package bench_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/trainfeed/trainfeed/bench"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/datasettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats.go v1.55.0: ObjectStore.Put starts this goroutine through a
		// temporary publisher whose deferred cleanup can nil its status
		// channel before the goroutine reads it; it then blocks forever on
		// a nil channel. A few per thousand Puts: upstream, not ours.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	)
}

var ways = []struct {
	name string
	run  bench.Way
}{
	{"sequential", bench.Sequential},
	{"in-memory", bench.InMemory},
	{"trainfeed", bench.Trainfeed},
}

func startServer(tb testing.TB, cfg bench.Config) *bench.Server {
	tb.Helper()
	srv, err := bench.StartServer(tb.Context(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, srv.Close()) })
	return srv
}

func TestWorkloads(t *testing.T) {
	const sources, rows = 5, 100
	base := bench.Config{Sources: sources, Rows: rows, Latency: time.Millisecond, ChunkRecords: 150,
		Logger: slog.New(slog.DiscardHandler)}
	srv := startServer(t, base)
	for _, f := range []chunk.Format{chunk.JSONL, chunk.Parquet} {
		for _, w := range ways {
			t.Run(string(f)+"/"+w.name, func(t *testing.T) {
				cfg := base
				cfg.URL, cfg.Format, cfg.Dir = srv.URL, f, t.TempDir()
				before := srv.Requests()
				res, err := w.run(t.Context(), cfg)
				require.NoError(t, err)
				assert.EqualValues(t, sources*rows, res.Records)
				assert.EqualValues(t, sources, srv.Requests()-before, "requests")
				assert.Positive(t, res.Elapsed)

				ids := map[int64]int{}
				var total int
				for _, file := range res.Files {
					require.Equal(t, f.Ext(), filepath.Ext(file))
					for _, id := range readIDs(t, file, f) {
						ids[id]++
						total++
					}
				}
				require.Equal(t, sources*rows, total, "records in files")
				require.Len(t, ids, sources*rows, "unique ids")
				for id := range int64(sources * rows) {
					require.Equal(t, 1, ids[id], "id %d", id)
				}
				if w.name != "trainfeed" { // combine never splits a batch; the others cut exact chunks
					assert.Len(t, res.Files, 4) // 500 records in chunks of 150
				}
			})
		}
	}
}

// readIDs returns the id column of a chunk file.
func readIDs(t *testing.T, file string, f chunk.Format) []int64 {
	t.Helper()
	var ids []int64
	switch f {
	case chunk.JSONL:
		fh, err := os.Open(file)
		require.NoError(t, err)
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var rec struct {
				ID    *int64   `json:"id"`
				Value *float64 `json:"value"`
				Flag  *bool    `json:"flag"`
				Name  *string  `json:"name"`
				Text  *string  `json:"text"`
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			require.True(t, rec.ID != nil && rec.Value != nil && rec.Flag != nil && rec.Name != nil && rec.Text != nil, sc.Text())
			require.Contains(t, *rec.Text, `, "quoted" text`)
			ids = append(ids, *rec.ID)
		}
		require.NoError(t, sc.Err())
	case chunk.Parquet:
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		ids = datasettest.ParquetIDs(t, data, file)
	}
	return ids
}

func TestServer(t *testing.T) {
	const latency = 20 * time.Millisecond
	srv := startServer(t, bench.Config{Sources: 3, Rows: 4, Latency: latency})
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/src/0.csv", http.StatusOK},
		{http.MethodGet, "/src/2.csv", http.StatusOK},
		{http.MethodGet, "/src/3.csv", http.StatusNotFound},
		{http.MethodGet, "/src/-1.csv", http.StatusNotFound},
		{http.MethodGet, "/src/01.csv", http.StatusNotFound},
		{http.MethodGet, "/src/1.json", http.StatusNotFound},
		{http.MethodGet, "/other/1.csv", http.StatusNotFound},
		{http.MethodPost, "/src/1.csv", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			require.NoError(t, err)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.status, resp.StatusCode, string(body))
			if tt.status != http.StatusOK {
				return
			}
			assert.GreaterOrEqual(t, time.Since(start), latency)
			assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
			var n int
			fmt.Sscanf(tt.path, "/src/%d.csv", &n)
			assert.Equal(t, string(bench.AppendSource(nil, n, 4)), string(body))
			lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
			require.Len(t, lines, 5)
			assert.Equal(t, "id,value,flag,name,text", lines[0])
			assert.True(t, strings.HasPrefix(lines[1], fmt.Sprintf("%d,", n*4)), lines[1])
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

// BenchmarkW1 times workload 1 — N sources of 1,000 CSV records behind 50ms
// of latency, into Parquet chunks — through the in-memory loop and trainfeed.
func BenchmarkW1(b *testing.B) {
	srv := startServer(b, bench.Config{Sources: 100})
	srv.Warm(100)
	for _, w := range ways[1:] {
		for _, n := range []int{10, 100} {
			b.Run(fmt.Sprintf("%s/N=%d", w.name, n), func(b *testing.B) {
				cfg := bench.Config{URL: srv.URL, Sources: n, Logger: slog.New(slog.DiscardHandler)}
				parent := b.TempDir()
				for b.Loop() {
					b.StopTimer()
					dir, err := os.MkdirTemp(parent, "")
					require.NoError(b, err)
					cfg.Dir = dir
					b.StartTimer()
					if _, err := w.run(b.Context(), cfg); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					require.NoError(b, os.RemoveAll(dir))
					b.StartTimer()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/source")
			})
		}
	}
}

// Every way runs the same transform when one is given: the seed's adds
// the text's tokens and value's log1p to every record.
func TestWaysRunTheTransform(t *testing.T) {
	const sources, rows = 3, 50
	base := bench.Config{Sources: sources, Rows: rows, Latency: time.Millisecond, ChunkRecords: 100,
		Format: chunk.JSONL, Spec: bench.SeedSpec(), Logger: slog.New(slog.DiscardHandler)}
	srv := startServer(t, base)
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			cfg := base
			cfg.URL, cfg.Dir = srv.URL, t.TempDir()
			res, err := bench.Measure(t.Context(), cfg, w.run)
			require.NoError(t, err)
			require.EqualValues(t, sources*rows, res.Records)
			require.Positive(t, res.CPU)
			for _, file := range res.Files {
				fh, err := os.Open(file)
				require.NoError(t, err)
				sc := bufio.NewScanner(fh)
				for sc.Scan() {
					var rec map[string]any
					require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
					require.IsType(t, float64(0), rec["words"], sc.Text()) // a count of tokens
					require.Contains(t, rec, "value_log")
				}
				require.NoError(t, sc.Err())
				fh.Close()
			}
		})
	}
}
