package fetch_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// TestRunnerRetries runs the handler under a real runner on the topology's
// fetch consumer: 503s are retried with backoff, a 429's Retry-After is
// honoured, a 404 is dead-lettered with the source's id and URL.
func TestRunnerRetries(t *testing.T) {
	e := newEnv(t)
	body := []byte("id\n1\n")
	var mu sync.Mutex
	hits := map[string][]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path] = append(hits[r.URL.Path], time.Now())
		n := len(hits[r.URL.Path])
		mu.Unlock()
		switch {
		case r.URL.Path == "/flaky" && n <= 2:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case r.URL.Path == "/limited" && n == 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case r.URL.Path == "/gone":
			http.NotFound(w, r)
		case r.URL.Path == "/broken":
			http.Error(w, "oops", http.StatusInternalServerError)
		case r.URL.Path == "/late-gone" && n <= 1:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case r.URL.Path == "/late-gone":
			http.Error(w, "gone", http.StatusGone)
		default:
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)

	h := e.handler(t, fetch.Config{})
	run, err := runner.New(e.js, e.topo.Fetch, h, runner.Config{
		Stage: topology.ConsumerFetch, BackoffBase: 20 * time.Millisecond, Annotate: h.Annotate,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	for _, src := range []wire.Source{
		{ID: "flaky", URL: srv.URL + "/flaky"},
		{ID: "limited", URL: srv.URL + "/limited"},
		{ID: "gone", URL: srv.URL + "/gone"},
		{ID: "broken", URL: srv.URL + "/broken"},
		{ID: "late-gone", URL: srv.URL + "/late-gone"},
	} {
		data, err := wire.Encode(&src)
		require.NoError(t, err)
		_, err = e.js.Publish(ctx, topology.Subject(topology.SubjectSources, "e2e"), data)
		require.NoError(t, err)
	}

	stats := run.Stats()
	require.Eventually(t, func() bool {
		return stats.Acked.Load() == 2 && stats.DeadLettered.Load() == 3
	}, 10*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 3+5+1, stats.Retried.Load(), "two 503s and one 429; five 500s; one 503")

	mu.Lock()
	require.Len(t, hits["/flaky"], 3)
	require.Len(t, hits["/limited"], 2)
	require.GreaterOrEqual(t, hits["/limited"][1].Sub(hits["/limited"][0]), 900*time.Millisecond,
		"Retry-After: 1 must delay the retry, not the 20ms backoff")
	require.Less(t, hits["/flaky"][2].Sub(hits["/flaky"][0]), 900*time.Millisecond)
	require.Len(t, hits["/broken"], 6, "the fetch consumer's MaxDeliver")
	mu.Unlock()

	s, err := e.js.Stream(ctx, topology.StreamFetched)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs, "one Fetched for each source that succeeded")

	// Each dead letter names the source, its URL, the HTTP status and the
	// attempts, for a person to read.
	dlq, err := e.js.Stream(ctx, topology.StreamDLQ)
	require.NoError(t, err)
	letters := map[string]wire.DeadLetter{}
	for seq := uint64(1); seq <= 3; seq++ {
		raw, err := dlq.GetMsg(ctx, seq)
		require.NoError(t, err)
		var dl wire.DeadLetter
		require.NoError(t, wire.Decode(raw.Data, &dl))
		letters[dl.SourceID] = dl
	}
	for _, tt := range []struct {
		id, reason string
		attempts   uint64
	}{
		{id: "gone", reason: "GET " + srv.URL + "/gone: 404 Not Found", attempts: 1},
		{id: "broken", reason: "gave up after 6 attempts: GET " + srv.URL + "/broken: 500 Internal Server Error", attempts: 6},
		{id: "late-gone", reason: "GET " + srv.URL + "/late-gone: 410 Gone (attempt 2)", attempts: 2},
	} {
		dl := letters[tt.id]
		require.Equal(t, srv.URL+"/"+tt.id, dl.URL, tt.id)
		require.Equal(t, tt.reason, dl.Error, tt.id)
		require.Equal(t, tt.attempts, dl.Attempts, tt.id)
		require.Equal(t, topology.ConsumerFetch, dl.Stage)
	}
}
