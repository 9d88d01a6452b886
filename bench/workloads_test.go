package bench_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/bench"
	"github.com/trainfeed/trainfeed/internal/chunk"
)

func startLargeServer(tb testing.TB, size int64) *bench.LargeServer {
	tb.Helper()
	srv, err := bench.StartLargeServer(tb.Context(), size)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, srv.Close()) })
	return srv
}

func TestLargeServer(t *testing.T) {
	srv := startLargeServer(t, 3<<20)
	assert.GreaterOrEqual(t, srv.Bytes, int64(3<<20))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+bench.LargePath, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.EqualValues(t, srv.Bytes, len(body))
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	require.EqualValues(t, srv.Rows+1, len(lines), "header and rows")
	assert.Equal(t, "id,value,flag,name,text", lines[0])

	resp, err = http.Get(srv.URL + "/src/0.csv")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	http.DefaultClient.CloseIdleConnections()
}

func TestRawLoop(t *testing.T) {
	srv := startLargeServer(t, 2<<20)
	for _, f := range []chunk.Format{chunk.JSONL, chunk.Parquet} {
		t.Run(string(f), func(t *testing.T) {
			res, err := bench.RawLoop(t.Context(), srv.URL+bench.LargePath, t.TempDir(), f, 10_000)
			require.NoError(t, err)
			assert.Equal(t, srv.Rows, res.Records)
			var total int
			for _, file := range res.Files {
				total += len(readIDs(t, file, f))
			}
			assert.EqualValues(t, srv.Rows, total, "records in files")
			assert.Len(t, res.Files, int((srv.Rows+9_999)/10_000))
		})
	}
}

func TestFreshness(t *testing.T) {
	const sources, rows = 6, 50
	base := bench.Config{Sources: sources, Rows: rows, Latency: time.Millisecond, ChunkRecords: 120,
		Logger: slog.New(slog.DiscardHandler)}
	srv := startServer(t, base)
	cfg := bench.FreshnessConfig{Config: base, Rate: 20, MaxAge: 200 * time.Millisecond}
	cfg.URL, cfg.Dir = srv.URL, t.TempDir()
	res, err := bench.Freshness(t.Context(), cfg)
	require.NoError(t, err)
	require.Len(t, res.Latencies, sources)
	assert.EqualValues(t, sources*rows, res.Records)
	assert.Positive(t, res.Chunks)
	for i, d := range res.Latencies {
		assert.Positive(t, d)
		if i > 0 {
			assert.LessOrEqual(t, res.Latencies[i-1], d, "sorted")
		}
	}
	assert.Equal(t, res.Latencies[0], res.Quantile(0.01))
	assert.Equal(t, res.Latencies[sources-1], res.Quantile(1))
	assert.Equal(t, res.Latencies[2], res.Quantile(0.5))
	assert.EqualValues(t, sources, srv.Requests())
}
