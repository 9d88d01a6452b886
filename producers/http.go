package producers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Limits of one POST /v1/sources request.
const (
	maxRequestBytes = 8 << 20
	maxIDLen        = 256
)

// HTTPResponse is the JSON body HTTPHandler answers with.
type HTTPResponse struct {
	// Sources are the sources published, in request order, with their ids
	// and datasets filled in. On a 503 it lists those published before the
	// pipeline refused the rest.
	Sources []HTTPSource `json:"sources"`
	// Error says what went wrong, for a person; empty on success.
	Error string `json:"error,omitempty"`
}

// HTTPSource is the JSON form of a Source: as HTTPHandler reads and answers
// it, and as a sources file line gives it.
type HTTPSource struct {
	ID      string            `json:"id,omitempty"`
	Dataset string            `json:"dataset,omitempty"`
	URL     string            `json:"url"`
	Format  string            `json:"format,omitempty"`
	Records string            `json:"records,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Auth    *wire.SourceAuth  `json:"auth,omitempty"`
}

func (h HTTPSource) source() Source {
	return Source{ID: h.ID, Dataset: h.Dataset, URL: h.URL, Format: h.Format, Records: h.Records, Headers: h.Headers, Auth: h.Auth}
}

// HTTPHandler returns the handler of POST /v1/sources: the body is one JSON
// source object or an array of them, with the keys of a sources file line
// (url, and optionally id, dataset, format, records, headers). Every source is
// checked before any is published; the query parameter dataset sets the
// dataset of sources that name none (default: the publisher's).
//
// It answers 202 Accepted with an HTTPResponse once JetStream has stored
// every source; 400 with the reason when the request is not valid (nothing
// is published then); 503 Service Unavailable with Retry-After when the
// pipeline is full (ErrFull) or NATS cannot be reached, listing the sources
// published before that. Give ids to make a retried request idempotent
// within the stream's duplicate window.
func HTTPHandler(pub *Publisher, retryAfter time.Duration) http.Handler {
	if retryAfter <= 0 {
		retryAfter = 5 * time.Second
	}
	return &httpHandler{pub: pub, retryAfter: retryAfter}
}

type httpHandler struct {
	pub        *Publisher
	retryAfter time.Duration
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, HTTPResponse{Error: "use POST"})
		return
	}
	// The body must be JSON whatever Content-Type says: `curl -d` sends
	// form encoding by default, and a form could not be a source anyway.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") {
		reply(w, http.StatusUnsupportedMediaType, HTTPResponse{Error: "send JSON, not a multipart form"})
		return
	}
	dataset := r.URL.Query().Get("dataset")
	if dataset != "" && !wire.ValidDataset(dataset) {
		reply(w, http.StatusBadRequest, HTTPResponse{Error: fmt.Sprintf("dataset %q: use 1-64 letters, digits, '_' or '-'", dataset)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply(w, http.StatusRequestEntityTooLarge, HTTPResponse{Error: fmt.Sprintf("request body over %d bytes: send fewer sources at once", maxRequestBytes)})
			return
		}
		reply(w, http.StatusBadRequest, HTTPResponse{Error: fmt.Sprintf("read request: %v", err)})
		return
	}
	srcs, err := parseSources(body, dataset)
	if err != nil {
		reply(w, http.StatusBadRequest, HTTPResponse{Error: err.Error()})
		return
	}
	resp := HTTPResponse{Sources: make([]HTTPSource, 0, len(srcs))}
	for _, src := range srcs {
		got, err := h.pub.Publish(r.Context(), src)
		if err != nil {
			if r.Context().Err() != nil {
				return // the client is gone
			}
			w.Header().Set("Retry-After", strconv.Itoa(int((h.retryAfter+time.Second-1)/time.Second)))
			if errors.Is(err, ErrFull) {
				resp.Error = ErrFull.Error()
			} else {
				resp.Error = "not published, retry later: " + err.Error()
			}
			reply(w, http.StatusServiceUnavailable, resp)
			return
		}
		resp.Sources = append(resp.Sources, HTTPSource{ID: got.ID, Dataset: got.Dataset, URL: got.URL, Format: got.Format, Records: got.Records})
	}
	reply(w, http.StatusAccepted, resp)
}

// parseSources reads one source object or an array of them, and checks each.
func parseSources(body []byte, dataset string) ([]Source, error) {
	body = bytes.TrimSpace(body)
	var items []HTTPSource
	switch {
	case len(body) == 0:
		return nil, errors.New("empty request: send a JSON source object or an array of them")
	case body[0] == '{':
		var one HTTPSource
		if err := decodeStrict(body, &one); err != nil {
			return nil, fmt.Errorf("not a source object: %w", err)
		}
		items = []HTTPSource{one}
	case body[0] == '[':
		if err := decodeStrict(body, &items); err != nil {
			return nil, fmt.Errorf("not an array of source objects: %w", err)
		}
		if len(items) == 0 {
			return nil, errors.New("empty array: send at least one source")
		}
	default:
		return nil, errors.New(`not JSON: send a source object such as {"url": "https://example.com/a.csv"} or an array of them`)
	}
	out := make([]Source, len(items))
	for i, it := range items {
		where := "source"
		if len(items) > 1 {
			where = fmt.Sprintf("source %d", i)
		}
		if it.URL == "" {
			return nil, fmt.Errorf("%s: no url", where)
		}
		if err := checkURL(it.URL); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := wire.CheckFormat(it.Format, it.Records); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if it.Dataset == "" {
			it.Dataset = dataset
		}
		if it.Dataset != "" && !wire.ValidDataset(it.Dataset) {
			return nil, fmt.Errorf("%s: dataset %q: use 1-64 letters, digits, '_' or '-'", where, it.Dataset)
		}
		if len(it.ID) > maxIDLen || strings.IndexFunc(it.ID, unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("%s: id must be at most %d characters, none of them control characters", where, maxIDLen)
		}
		out[i] = it.source()
	}
	return out, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("text after the JSON value")
	}
	return nil
}

func reply(w http.ResponseWriter, code int, resp HTTPResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}
