package producers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
	"github.com/trainfeed/trainfeed/producers"
)

// pipeline returns a publisher on a real server whose sources stream holds
// at most maxSources sources, and the JetStream context.
func pipeline(t *testing.T, maxSources int64) (*producers.Publisher, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t))
	cfg := topology.DefaultConfig()
	cfg.Sources.MaxMsgs = maxSources
	_, err := topology.Ensure(context.Background(), js, cfg)
	require.NoError(t, err)
	pub, err := producers.NewPublisher(js, "web")
	require.NoError(t, err)
	return pub, js
}

func post(t *testing.T, h http.Handler, target, body string) (*httptest.ResponseRecorder, producers.HTTPResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader(body)))
	var resp producers.HTTPResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp), rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	return rec, resp
}

func sourcesIn(t *testing.T, js jetstream.JetStream) []wire.Source {
	t.Helper()
	s, err := js.Stream(context.Background(), topology.StreamSources)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	var out []wire.Source
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		require.NoError(t, err)
		src, err := wire.DecodeSource(m.Data, "")
		require.NoError(t, err)
		require.Equal(t, "source/"+src.ID, m.Header.Get(jetstream.MsgIDHeader))
		require.Equal(t, "trainfeed.sources."+src.Dataset, m.Subject)
		out = append(out, src)
	}
	return out
}

func TestHTTPHandlerPublishes(t *testing.T) {
	pub, js := pipeline(t, 0)
	h := producers.HTTPHandler(pub, 0)

	rec, resp := post(t, h, "/v1/sources", `{"url": "https://example.com/a.csv", "id": "a", "format": "csv", "headers": {"Authorization": "Bearer x"}}`)
	require.Equal(t, http.StatusAccepted, rec.Code)
	require.Equal(t, []producers.HTTPSource{{ID: "a", Dataset: "web", URL: "https://example.com/a.csv", Format: "csv"}}, resp.Sources)

	rec, resp = post(t, h, "/v1/sources?dataset=logs", `[{"url": "https://example.com/b.jsonl"}, {"url": "https://example.com/api", "dataset": "other", "records": "data"}]`)
	require.Equal(t, http.StatusAccepted, rec.Code)
	require.Len(t, resp.Sources, 2)
	require.NotEmpty(t, resp.Sources[0].ID, "an id is made up when none is given")
	require.Equal(t, "logs", resp.Sources[0].Dataset)
	require.Equal(t, "other", resp.Sources[1].Dataset)
	require.Equal(t, "data", resp.Sources[1].Records)

	// The same id again is idempotent: JetStream drops the duplicate.
	rec, _ = post(t, h, "/v1/sources", `{"url": "https://example.com/a.csv", "id": "a"}`)
	require.Equal(t, http.StatusAccepted, rec.Code)

	got := sourcesIn(t, js)
	require.Len(t, got, 3)
	require.Equal(t, map[string]string{"Authorization": "Bearer x"}, got[0].Headers)
	require.Equal(t, "csv", got[0].Format)
	require.Equal(t, "data", got[2].Records)
}

func TestHTTPHandlerRefusesBadInput(t *testing.T) {
	pub, js := pipeline(t, 0)
	h := producers.HTTPHandler(pub, 0)
	for _, tt := range []struct{ name, target, body, want string }{
		{"empty", "/v1/sources", "", "empty request"},
		{"not json", "/v1/sources", "url=https://x/a.csv", "not JSON"},
		{"no url", "/v1/sources", `{"id": "a"}`, "source: no url"},
		{"bad url in array", "/v1/sources", `[{"url": "https://x/a.csv"}, {"url": "https://x/a b"}]`, "source 1: not a URL or path"},
		{"unsupported scheme", "/v1/sources", `{"url": "ftp://x/a.csv"}`, `unsupported scheme "ftp"`},
		{"unknown key", "/v1/sources", `{"url": "https://x/a.csv", "formt": "csv"}`, `unknown field "formt"`},
		{"bad dataset", "/v1/sources", `{"url": "https://x/a.csv", "dataset": "a.b"}`, `dataset "a.b"`},
		{"bad query dataset", "/v1/sources?dataset=a*b", `{"url": "https://x/a.csv"}`, `dataset "a*b"`},
		{"control in id", "/v1/sources", `{"url": "https://x/a.csv", "id": "a\nb"}`, "control characters"},
		{"trailing text", "/v1/sources", `{"url": "https://x/a.csv"} {}`, "text after"},
		{"empty array", "/v1/sources", `[]`, "empty array"},
		{"bad records path", "/v1/sources", `{"url": "https://x/api", "records": "data..items"}`, `source: records path "data..items": empty key`},
		{"records path of tsv", "/v1/sources", `{"url": "https://x/a", "format": "tsv", "records": "data"}`, "needs a JSON document"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, resp := post(t, h, tt.target, tt.body)
			assert.Equal(t, http.StatusBadRequest, rec.Code)
			assert.Contains(t, resp.Error, tt.want)
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/sources", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Empty(t, sourcesIn(t, js), "nothing may be published from a bad request")
}

// A full sources stream is "pipeline full, retry later": ErrFull from the
// Go API, 503 with Retry-After from HTTP, and what was published is listed.
func TestPipelineFull(t *testing.T) {
	pub, js := pipeline(t, 2)
	ctx := context.Background()
	_, err := pub.Publish(ctx, producers.Source{URL: "https://example.com/1.csv", ID: "1"})
	require.NoError(t, err)

	h := producers.HTTPHandler(pub, 1500*time.Millisecond) // rounds up to 2s
	rec, resp := post(t, h, "/v1/sources", `[{"url": "https://example.com/2.csv", "id": "2"}, {"url": "https://example.com/3.csv", "id": "3"}]`)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "2", rec.Header().Get("Retry-After"))
	require.Equal(t, "pipeline full, retry later", resp.Error)
	require.Equal(t, []producers.HTTPSource{{ID: "2", Dataset: "web", URL: "https://example.com/2.csv"}}, resp.Sources)

	_, err = pub.Publish(ctx, producers.Source{URL: "https://example.com/3.csv", ID: "3"})
	require.ErrorIs(t, err, producers.ErrFull)
	var apiErr *jetstream.APIError
	require.True(t, errors.As(err, &apiErr), "the JetStream error stays available")
	require.Len(t, sourcesIn(t, js), 2)

	// A duplicate of a stored source is not "full": it was stored already.
	_, err = pub.Publish(ctx, producers.Source{URL: "https://example.com/1.csv", ID: "1"})
	require.NoError(t, err)
}

// Publish refuses what the fetch stage could only dead-letter.
func TestPublishRefusesBadSources(t *testing.T) {
	pub, js := pipeline(t, 0)
	ctx := context.Background()
	for _, tt := range []struct {
		src  producers.Source
		want string
	}{
		{producers.Source{}, "no url"},
		{producers.Source{URL: "ftp://x/a.csv"}, `unsupported scheme "ftp"`},
		{producers.Source{URL: "https://x/a", Dataset: "a.b"}, "invalid dataset"},
		{producers.Source{URL: "https://x/api", Records: "data..items"}, `records path "data..items": empty key`},
		{producers.Source{URL: "https://x/api", Format: "jsonl", Records: "data"}, "needs a JSON document"},
	} {
		_, err := pub.Publish(ctx, tt.src)
		require.ErrorContains(t, err, tt.want)
	}
	require.Empty(t, sourcesIn(t, js))
	got, err := pub.Publish(ctx, producers.Source{URL: "https://x/api", Format: "json", Records: "data"})
	require.NoError(t, err)
	require.Equal(t, "data", got.Records)
	require.Equal(t, "data", sourcesIn(t, js)[0].Records)
}
