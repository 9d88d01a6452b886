package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/producers"
)

// TestUnchangedContentAddedOnce publishes sources, then the same URLs again
// under new source ids (as a Go API producer would): unchanged bodies add
// nothing, a changed body adds its records. It runs with JetStream's
// duplicate window at its default, where the second Fetched of a body is
// dropped as a duplicate, and at 100ms, where it reaches the combine stage
// and its ledger.
func TestUnchangedContentAddedOnce(t *testing.T) {
	for _, dup := range []time.Duration{2 * time.Minute, 100 * time.Millisecond} {
		t.Run(dup.String(), func(t *testing.T) {
			const sources, rows = 10, 50
			var version atomic.Int64
			var requests, notModified atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				var n int
				if _, err := fmt.Sscanf(r.URL.Path, "/src/%d.csv", &n); err != nil {
					http.NotFound(w, r)
					return
				}
				v := int64(0)
				if n == 0 {
					v = version.Load() // source 0 changes when the test says so
				}
				etag := fmt.Sprintf(`"%d-%d"`, n, v)
				w.Header().Set("ETag", etag)
				if r.Header.Get("If-None-Match") == etag {
					notModified.Add(1)
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Content-Type", "text/csv")
				fmt.Fprintln(w, "id,version")
				for i := range rows {
					fmt.Fprintf(w, "%d,%d\n", n*1000+int(v)*100000+i, v)
				}
			}))
			t.Cleanup(srv.Close)

			ns := natstest.Server(t)
			_, js := natstest.Connect(t, ns)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tc := topology.DefaultConfig()
			tc.Duplicates = dup
			topo, err := topology.Ensure(ctx, js, tc)
			require.NoError(t, err)
			out := t.TempDir()
			cc := combine.DefaultConfig()
			cc.Out, cc.Format, cc.MaxAge = out, chunk.JSONL, 200*time.Millisecond
			stages, err := pipeline.New(topo, pipeline.Config{
				Fetch: fetch.Config{AllowPrivate: true}, Combine: cc, Logger: slog.New(slog.DiscardHandler),
			})
			require.NoError(t, err)
			sctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- stages.Run(sctx) }()
			t.Cleanup(func() {
				stop()
				require.NoError(t, <-done)
			})
			pub, err := producers.NewPublisher(js, "ds")
			require.NoError(t, err)
			publish := func(prefix string) {
				for n := range sources {
					_, err := pub.Publish(ctx, producers.Source{ID: fmt.Sprintf("%s-%d", prefix, n), URL: fmt.Sprintf("%s/src/%d.csv", srv.URL, n)})
					require.NoError(t, err)
				}
			}
			// settled reports whether every stage has handled everything: the
			// stages are checked in pipeline order, and each publishes
			// downstream before it acks.
			settled := func() bool {
				for _, c := range []string{topology.ConsumerFetch, topology.ConsumerTransform, topology.ConsumerCombine} {
					info, err := topo.ConsumerOf(c).Info(ctx)
					if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
						return false
					}
				}
				return true
			}
			manifest := func() *dataset.Manifest {
				m, err := dataset.ReadManifest(out, "ds")
				require.NoError(t, err)
				return m
			}
			waitFor := func(records int64) {
				require.Eventually(t, func() bool {
					m, err := dataset.ReadManifest(out, "ds")
					return err == nil && m.Records == records && settled()
				}, 30*time.Second, 50*time.Millisecond)
				time.Sleep(3 * cc.MaxAge) // anything still to come would be committed by now
				require.True(t, settled())
				require.EqualValues(t, records, manifest().Records)
			}

			publish("first")
			waitFor(sources * rows)
			first := manifest()
			require.Zero(t, notModified.Load())

			// Same URLs, same bodies, new ids: nothing added; every body revalidated.
			pastWindow := func() {
				if dup < time.Second {
					time.Sleep(2 * dup) // the next Fetched are not dropped as duplicates
				}
			}
			pastWindow()
			publish("second")
			waitFor(sources * rows)
			require.Len(t, manifest().Chunks, len(first.Chunks), "no chunk added")
			require.EqualValues(t, sources, notModified.Load(), "bodies revalidated, not downloaded")
			for n := range sources {
				o := outcome(t, topo, "ds", fmt.Sprintf("second-%d", n))
				require.Equal(t, fmt.Sprintf("first-%d", n), o.RecordsAs)
				require.True(t, o.FromCache)
				require.Equal(t, http.StatusNotModified, o.Status)
			}

			// Source 0 changes: only its new body is added.
			version.Store(1)
			pastWindow()
			publish("third")
			waitFor(sources*rows + rows)
			ids, _ := datasettest.ReadAll(t, out, "ds")
			require.Len(t, ids, sources*rows+rows)
			for id, count := range ids {
				require.Equal(t, 1, count, "id %d", id)
			}
			require.Equal(t, "third-0", outcome(t, topo, "ds", "third-0").RecordsAs)
			require.Equal(t, "first-1", outcome(t, topo, "ds", "third-1").RecordsAs)
		})
	}
}

func outcome(t *testing.T, topo *topology.Topology, dataset, id string) fetch.Outcome {
	t.Helper()
	e, err := topo.Cache.Get(context.Background(), fetch.OutcomeKey(dataset, id))
	require.NoError(t, err)
	var o fetch.Outcome
	require.NoError(t, json.Unmarshal(e.Value(), &o))
	return o
}

// TestJobSameBodyUnderAnotherID runs a file that names one URL twice, then a
// file with the same URLs on other lines (so other source ids) and one new
// URL: each body is added once, the run ends, and the summary says which
// sources were already in the dataset.
func TestJobSameBodyUnderAnotherID(t *testing.T) {
	const rows = 100
	srv := csvServer(t, rows)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sum, err := newJob(t, out, chunk.JSONL).Run(ctx, entries(t, srv.URL, 4, srv.URL+"/src/0.csv"))
	require.NoError(t, err)
	require.Equal(t, 5, sum.OK)
	require.Zero(t, sum.Failed)
	require.Equal(t, 1, sum.Existing, "the repeated line adds nothing")
	require.EqualValues(t, 4*rows, sum.Records)
	ids, _ := datasettest.ReadAll(t, out, "ds")
	require.Len(t, ids, 4*rows)

	// The same URLs one line lower, after a new one.
	es := entries(t, srv.URL, 0, srv.URL+"/src/4.csv", srv.URL+"/src/0.csv", srv.URL+"/src/1.csv",
		srv.URL+"/src/2.csv", srv.URL+"/src/3.csv")
	sum, err = newJob(t, out, chunk.JSONL).Run(ctx, es)
	require.NoError(t, err)
	require.Equal(t, 5, sum.OK)
	require.Equal(t, 4, sum.Existing)
	ids, m := datasettest.ReadAll(t, out, "ds")
	require.Len(t, ids, 5*rows)
	for id, n := range ids {
		require.Equal(t, 1, n, "id %d", id)
	}
	require.EqualValues(t, 5*rows, m.Records)
}

// TestJobRerunAddsAChangedBody runs the same sources twice in a row, well
// within JetStream's 2-minute duplicate window, with one body changed in
// between: the rerun fetches every source again, adds the changed body's
// records and nothing else, and says the other two were already there.
func TestJobRerunAddsAChangedBody(t *testing.T) {
	var version atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/src/%d.csv", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		first, rows := 10*n, 5
		if n == 1 && version.Load() == 1 {
			first, rows = 1000, 6
		}
		fmt.Fprintln(w, "id")
		for i := range rows {
			fmt.Fprintln(w, first+i)
		}
	}))
	t.Cleanup(srv.Close)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for run, want := range []struct{ existing, records, inDataset int }{
		{0, 15, 15},
		{2, 16, 21}, // source 1 changed: 6 new records
		{3, 16, 21},
	} {
		if run == 1 {
			version.Store(1)
		}
		sum, err := newJob(t, out, chunk.JSONL).Run(ctx, entries(t, srv.URL, 3))
		require.NoError(t, err, "run %d", run)
		require.Equal(t, 3, sum.OK, "run %d", run)
		require.Equal(t, want.existing, sum.Existing, "run %d", run)
		require.EqualValues(t, want.records, sum.Records, "run %d", run)
		ids, _ := datasettest.ReadAll(t, out, "ds")
		require.Len(t, ids, want.inDataset, "run %d", run)
		for id, n := range ids {
			require.Equal(t, 1, n, "run %d: id %d", run, id)
		}
	}
}
