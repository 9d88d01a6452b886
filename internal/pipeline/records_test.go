package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/datasettest"
)

// apiServer serves /api/<n>, a JSON document as an API answers it: page n's
// rows (ids n*rows .. n*rows+rows-1) under data.items, and the ids of its
// flagged rows under errors, between members a client skips.
func apiServer(t *testing.T, rows int) *httptest.Server {
	t.Helper()
	return numberedServer(t, "/api/%d", "application/json", func(bw *bufio.Writer, n int) {
		fmt.Fprintf(bw, `{"meta": {"page": %d, "items": [{"id": -1}]}, "data": {"total": %d, "items": [`, n, rows)
		for i := range rows {
			if i > 0 {
				bw.WriteString(",\n")
			}
			id := n*rows + i
			fmt.Fprintf(bw, `{"id": %d, "text": "row %d, \"page\" %d ]}"}`, id, i, n)
		}
		fmt.Fprintf(bw, `]}, "errors": [{"id": %d}], "next": "/api/%d"}`, 100000+n, n+1)
	})
}

// Records wrapped in an API's JSON document become records by their path;
// the same body read at another path adds other records; a path the
// document does not have fails its source with the reason and costs the
// others nothing.
func TestJobRecordsPath(t *testing.T) {
	const pages, rows = 4, 250
	srv := apiServer(t, rows)
	out := t.TempDir()
	job := newJob(t, out, chunk.Parquet)
	var lines []string
	for n := range pages {
		lines = append(lines, fmt.Sprintf(`{"url": "%s/api/%d", "records": "data.items"}`, srv.URL, n))
	}
	lines = append(lines,
		fmt.Sprintf(`{"url": "%s/api/0", "records": ".errors"}`, srv.URL),
		fmt.Sprintf(`{"url": "%s/api/1", "records": "data.rows"}`, srv.URL),
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := job.Run(ctx, entries(t, srv.URL, 0, lines...))
	require.NoError(t, err)
	require.Equal(t, pages+1, sum.OK, "%+v", sum.Outcomes)
	require.Equal(t, 1, sum.Failed)
	failed := sum.Outcomes[0]
	require.True(t, failed.Failed)
	require.Equal(t, srv.URL+"/api/1", failed.URL)
	require.Equal(t, "transform", failed.Stage)
	require.Contains(t, failed.Reason, `records path: data has no key "rows"`)

	ids, _ := datasettest.ReadAll(t, out, "ds")
	require.Len(t, ids, pages*rows+1)
	for id := range pages * rows {
		require.Equal(t, 1, ids[int64(id)], "id %d", id)
	}
	require.Equal(t, 1, ids[100000], "the errors array of page 0")
	require.Zero(t, ids[-1], "meta.items is not data.items")
}
