package fetch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// validating serves one body whose version the test sets, with an ETag, a
// Last-Modified or neither, and answers conditional requests with 304 when
// the version is unchanged. It records the conditional headers of every
// request.
type validating struct {
	mu       sync.Mutex
	version  int
	etag     bool
	lastMod  bool
	requests []http.Header
}

func (v *validating) set(version int) {
	v.mu.Lock()
	v.version = version
	v.mu.Unlock()
}

func (v *validating) seen() []http.Header {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]http.Header(nil), v.requests...)
}

func (v *validating) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	v.requests = append(v.requests, r.Header.Clone())
	ver := v.version
	v.mu.Unlock()
	etag := fmt.Sprintf(`"v%d"`, ver)
	modified := time.Date(2026, 1, ver, 0, 0, 0, 0, time.UTC)
	if v.etag {
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if v.lastMod {
		w.Header().Set("Last-Modified", modified.Format(http.TimeFormat))
		if t, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !modified.After(t) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Type", "text/csv")
	fmt.Fprintf(w, "id,version\n1,%d\n2,%d\n", ver, ver)
}

func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// fetchOnce handles src on dataset and returns the outcome it recorded. (The
// Fetched of a source whose body another source delivered first is dropped
// by JetStream's duplicate window, so the outcome is what tells.)
func (e *env) fetchOnce(t *testing.T, h *fetch.Handler, dataset string, src wire.Source) fetch.Outcome {
	t.Helper()
	require.NoError(t, h.Handle(context.Background(), msg(t, dataset, src)))
	return e.outcome(t, dataset, src.ID)
}

func (e *env) outcome(t *testing.T, dataset, id string) fetch.Outcome {
	t.Helper()
	kve, err := e.topo.Cache.Get(context.Background(), fetch.OutcomeKey(dataset, id))
	require.NoError(t, err)
	var o fetch.Outcome
	require.NoError(t, json.Unmarshal(kve.Value(), &o))
	require.Equal(t, id, o.SourceID)
	return o
}

func TestRevalidate(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		etag     bool
		lastMod  bool
		wantCond string // the conditional header sent on a re-fetch
		want304  bool
	}{
		{name: "etag", etag: true, wantCond: "If-None-Match", want304: true},
		{name: "last-modified", lastMod: true, wantCond: "If-Modified-Since", want304: true},
		{name: "both", etag: true, lastMod: true, wantCond: "If-None-Match", want304: true},
		{name: "no validators", want304: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &validating{version: 1, etag: tt.etag, lastMod: tt.lastMod}
			srv := serve(t, v)
			h := e.handler(t, fetch.Config{})
			ds := fmt.Sprintf("reval%d", i)
			url := srv.URL + "/data.csv"

			first := e.fetchOnce(t, h, ds, wire.Source{ID: "first", URL: url})
			assert.False(t, first.FromCache)
			assert.Equal(t, http.StatusOK, first.Status)

			// Fetched again for another source: revalidated, not downloaded.
			second := e.fetchOnce(t, h, ds, wire.Source{ID: "second", URL: url})
			reqs := v.seen()
			require.Len(t, reqs, 2)
			assert.Empty(t, reqs[0].Get("If-None-Match")+reqs[0].Get("If-Modified-Since"), "the first fetch is unconditional")
			if tt.wantCond != "" {
				assert.NotEmpty(t, reqs[1].Get(tt.wantCond))
			}
			assert.Equal(t, tt.want304, second.FromCache)
			if tt.want304 {
				assert.Equal(t, http.StatusNotModified, second.Status)
			}
			assert.Equal(t, first.SHA256, second.SHA256)
			// Same URL, same body: its records go under the first source's id.
			assert.Equal(t, "first", second.RecordsAs)
			f, ok := e.fetched(t, ds)
			require.True(t, ok)
			assert.Equal(t, "first", f.SourceID, "the second Fetched is the first's duplicate")

			// A changed body is downloaded and is new content for its source.
			v.set(2)
			third := e.fetchOnce(t, h, ds, wire.Source{ID: "third", URL: url})
			assert.False(t, third.FromCache)
			assert.Equal(t, http.StatusOK, third.Status)
			assert.NotEqual(t, first.SHA256, third.SHA256)
			assert.Equal(t, "third", third.RecordsAs)
			f, ok = e.fetched(t, ds)
			require.True(t, ok)
			assert.Equal(t, "third", f.SourceID)
			assert.Empty(t, f.ForSource)
			assert.False(t, f.FromCache)
			assert.Equal(t, http.StatusOK, f.Status)
			require.Equal(t, "id,version\n1,2\n2,2\n", string(e.object(t, f.Object)))
		})
	}
}

func TestCacheTTL(t *testing.T) {
	e := newEnv(t)
	v := &validating{version: 1, etag: true}
	srv := serve(t, v)
	ds := "ttl"
	url := srv.URL + "/data.csv"

	h := e.handler(t, fetch.Config{CacheTTL: time.Hour})
	first := e.fetchOnce(t, h, ds, wire.Source{ID: "a", URL: url})
	require.False(t, first.FromCache)
	// Fresh: served from the cache without a request, by any member.
	other := e.handler(t, fetch.Config{CacheTTL: time.Hour})
	for _, hh := range []*fetch.Handler{h, other} {
		f := e.fetchOnce(t, hh, ds, wire.Source{ID: "b", URL: url})
		require.True(t, f.FromCache)
		require.Zero(t, f.Status)
		require.Equal(t, first.SHA256, f.SHA256)
	}
	require.Len(t, v.seen(), 1, "no request while the cache entry is fresh")

	// Another source's headers make another request: a cached body is not
	// shared between credentials.
	f := e.fetchOnce(t, h, ds, wire.Source{ID: "c", URL: url, Headers: map[string]string{"Authorization": "Bearer x"}})
	require.False(t, f.FromCache)
	require.Len(t, v.seen(), 2)

	// A source making its own conditional request bypasses the cache.
	v.set(2)
	f = e.fetchOnce(t, h, ds, wire.Source{ID: "d", URL: url, Headers: map[string]string{"If-None-Match": `"v0"`}})
	require.False(t, f.FromCache)
	require.Len(t, v.seen(), 3)

	// Stale: asked again, conditionally.
	short := e.handler(t, fetch.Config{CacheTTL: time.Nanosecond})
	f = e.fetchOnce(t, short, ds, wire.Source{ID: "e", URL: url})
	require.Len(t, v.seen(), 4)
	require.Equal(t, `"v1"`, v.seen()[3].Get("If-None-Match"))
	require.False(t, f.FromCache, "version 2 is new")
}

// TestOldBodyIsRenewed checks that a body with less than half the bodies
// store's TTL left is not reused by a cache hit but downloaded and uploaded
// again, so that nothing published references a body about to expire.
func TestOldBodyIsRenewed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i, tt := range []struct {
		name        string
		spoolMemory int64
	}{
		{"uploaded whole", 0},
		{"streamed, then renamed over the old copy", 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bodies, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: fmt.Sprintf("short-lived-%d", i), TTL: 2 * time.Second})
			require.NoError(t, err)
			h, err := fetch.New(e.js, bodies, e.topo.Cache, fetch.Config{AllowPrivate: true, CacheTTL: time.Hour, SpoolMemory: tt.spoolMemory})
			require.NoError(t, err)
			t.Cleanup(h.Close)
			v := &validating{version: 1, etag: true}
			srv := serve(t, v)
			url := srv.URL + "/data.csv"
			dataset := fmt.Sprintf("renew%d", i)

			first := e.fetchOnce(t, h, dataset, wire.Source{ID: "a", URL: url})
			info1, err := bodies.GetInfo(ctx, "sha256/"+first.SHA256)
			require.NoError(t, err)
			second := e.fetchOnce(t, h, dataset, wire.Source{ID: "b", URL: url})
			require.True(t, second.FromCache, "young body: the cache serves it")
			require.Len(t, v.seen(), 1)

			time.Sleep(1100 * time.Millisecond) // past half the TTL
			third := e.fetchOnce(t, h, dataset, wire.Source{ID: "c", URL: url})
			require.False(t, third.FromCache, "an old body is not reused")
			require.Len(t, v.seen(), 2)
			require.Empty(t, v.seen()[1].Get("If-None-Match"), "no conditional request for a body that must be renewed")
			info2, err := bodies.GetInfo(ctx, "sha256/"+third.SHA256)
			require.NoError(t, err)
			require.NotEqual(t, info1.NUID, info2.NUID, "uploaded again")
			require.Equal(t, first.SHA256, third.SHA256)
			got, err := bodies.GetBytes(ctx, "sha256/"+third.SHA256)
			require.NoError(t, err)
			require.Equal(t, "id,version\n1,1\n2,1\n", string(got))
			infos, err := bodies.List(ctx)
			require.NoError(t, err)
			require.Len(t, infos, 1, "no upload left under a temporary name")
		})
	}
}
