package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/producers"
)

// numberedServer serves the paths pattern matches with one %d, n, with
// the body write(n) writes, of the given content type.
func numberedServer(t *testing.T, pattern, contentType string, write func(bw *bufio.Writer, n int)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, pattern, &n); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		bw := bufio.NewWriter(w)
		write(bw, n)
		bw.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// csvServer serves /src/<n>.csv: rows ids n*rows .. n*rows+rows-1.
func csvServer(t *testing.T, rows int) *httptest.Server {
	t.Helper()
	return numberedServer(t, "/src/%d.csv", "text/csv", func(bw *bufio.Writer, n int) {
		fmt.Fprintln(bw, "id,value,flag,text")
		for i := range rows {
			id := n*rows + i
			fmt.Fprintf(bw, "%d,%g,%t,\"row %d, source %d\"\n", id, float64(id)/7, id%2 == 0, i, n)
		}
	})
}

func newJob(t *testing.T, out string, f chunk.Format) *pipeline.Job {
	t.Helper()
	job := &pipeline.Job{StoreDir: filepath.Join(out, ".jetstream"), Dataset: "ds", Topology: topology.DefaultConfig()}
	job.Stages.Fetch.Root = t.TempDir()
	job.Stages.Fetch.AllowPrivate = true // the test servers listen on loopback
	job.Stages.Combine = combine.DefaultConfig()
	job.Stages.Combine.Out = out
	job.Stages.Combine.Format = f
	return job
}

func entries(t *testing.T, base string, n int, extra ...string) []producers.Entry {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s/src/%d.csv\n", base, i)
	}
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	es, err := producers.ReadSources(strings.NewReader(b.String()))
	require.NoError(t, err)
	return es
}

func TestJobExactlyOnce(t *testing.T) {
	for _, f := range []chunk.Format{chunk.JSONL, chunk.Parquet} {
		t.Run(string(f), func(t *testing.T) {
			const sources, rows = 200, 1000
			srv := csvServer(t, rows)
			out := t.TempDir()
			job := newJob(t, out, f)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sum, err := job.Run(ctx, entries(t, srv.URL, sources))
			require.NoError(t, err)
			require.Equal(t, sources, sum.OK, "%+v", sum.Outcomes[:min(3, len(sum.Outcomes))])
			require.Zero(t, sum.Failed)
			require.EqualValues(t, sources*rows, sum.Records)

			ids, m := datasettest.ReadAll(t, out, "ds")
			require.Len(t, ids, sources*rows)
			for id, n := range ids {
				require.Equal(t, 1, n, "id %d", id)
				require.True(t, id >= 0 && id < sources*rows)
			}
			require.EqualValues(t, sources*rows, m.Records)
			require.Equal(t, sum.Chunks, len(m.Chunks))
			require.ElementsMatch(t, []string{"id", "value", "flag", "text"}, fieldNames(m))

			// Running the same sources again adds nothing.
			again, err := newJob(t, out, f).Run(ctx, entries(t, srv.URL, sources))
			require.NoError(t, err)
			require.Equal(t, sources, again.OK)
			m2, err := dataset.ReadManifest(out, "ds")
			require.NoError(t, err)
			require.Equal(t, len(m.Chunks), len(m2.Chunks))
			require.Equal(t, m.Records, m2.Records)
		})
	}
}

func fieldNames(m *dataset.Manifest) []string {
	var names []string
	for _, f := range m.Schema {
		names = append(names, f.Name)
	}
	return names
}

func TestJobReportsFailuresAndKeepsTheRest(t *testing.T) {
	srv := csvServer(t, 100)
	out := t.TempDir()
	job := newJob(t, out, chunk.JSONL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	es := entries(t, srv.URL, 5,
		srv.URL+"/missing.csv",
		"ftp://example.com/x.csv",
		"{not json",
		"/etc/passwd",
	)
	sum, err := job.Run(ctx, es)
	require.NoError(t, err)
	require.Equal(t, 5, sum.OK)
	require.Equal(t, 4, sum.Failed)
	require.EqualValues(t, 500, sum.Records)
	reasons := map[string]string{}
	for _, o := range sum.Outcomes[:4] {
		require.True(t, o.Failed)
		require.NotEmpty(t, o.Reason)
		reasons[o.URL] = o.Stage + ": " + o.Reason
	}
	require.Contains(t, reasons[srv.URL+"/missing.csv"], "404")
	require.Contains(t, reasons["ftp://example.com/x.csv"], "scheme")
	require.Contains(t, reasons["{not json"], "parse: line 8")
	require.Contains(t, reasons["/etc/passwd"], "fetch: ")
	ids, _ := datasettest.ReadAll(t, out, "ds")
	require.Len(t, ids, 500)
}

// A run commits its last chunk as soon as the pipeline has drained, not
// after combine's idle time or max age (here far longer than the test may
// take), and the chunks are full-size, not cut early.
func TestJobFlushesWhenDrained(t *testing.T) {
	const n, rows = 30, 200
	srv := csvServer(t, rows)
	out := t.TempDir()
	job := newJob(t, out, chunk.JSONL)
	job.Stages.Combine.Idle = 10 * time.Minute
	job.Stages.Combine.MaxAge = 10 * time.Minute
	job.Stages.Combine.ChunkRecords = 4 * rows
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := job.Run(ctx, entries(t, srv.URL, n))
	require.NoError(t, err)
	require.Equal(t, n, sum.OK)
	ids, m := datasettest.ReadAll(t, out, "ds")
	require.Len(t, ids, n*rows)
	require.EqualValues(t, n*rows, m.Records)
	full := 0
	for _, ch := range m.Chunks {
		if ch.Records >= 4*rows {
			full++
		}
	}
	require.GreaterOrEqual(t, full, len(m.Chunks)-2, "chunks cut early: %d of %d full", full, len(m.Chunks))
}
