package fetch_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// env is a real JetStream server with trainfeed's topology.
type env struct {
	js   jetstream.JetStream
	topo *topology.Topology
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topo, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	require.NoError(t, err)
	return &env{js: js, topo: topo}
}

// handler returns a handler on the env's topology that may reach private
// and loopback addresses, where the test servers listen.
func (e *env) handler(t testing.TB, cfg fetch.Config) *fetch.Handler {
	t.Helper()
	cfg.AllowPrivate = true
	return e.strictHandler(t, cfg)
}

// strictHandler returns a handler on the env's topology configured by cfg
// alone.
func (e *env) strictHandler(t testing.TB, cfg fetch.Config) *fetch.Handler {
	t.Helper()
	h, err := fetch.New(e.js, e.topo.Bodies, e.topo.Cache, cfg)
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return h
}

// noUploadsLeft checks that no streamed upload is left under its
// temporary name.
func (e *env) noUploadsLeft(t *testing.T) {
	t.Helper()
	infos, err := e.topo.Bodies.List(context.Background())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return
	}
	require.NoError(t, err)
	for _, info := range infos {
		require.False(t, strings.HasPrefix(info.Name, "upload/"), "left behind: %s", info.Name)
	}
}

// fetched returns the last Fetched published for dataset, or false.
func (e *env) fetched(t *testing.T, dataset string) (wire.Fetched, bool) {
	t.Helper()
	s, err := e.js.Stream(context.Background(), topology.StreamFetched)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(context.Background(), topology.Subject(topology.SubjectFetched, dataset))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return wire.Fetched{}, false
	}
	require.NoError(t, err)
	var f wire.Fetched
	require.NoError(t, wire.Decode(raw.Data, &f))
	return f, true
}

func (e *env) object(t *testing.T, name string) []byte {
	t.Helper()
	b, err := e.topo.Bodies.GetBytes(context.Background(), name)
	require.NoError(t, err)
	return b
}

var seq atomic.Uint64

// msg returns src as the runner hands it to a handler, on dataset's subject.
func msg(t testing.TB, dataset string, src wire.Source) *runner.Msg {
	t.Helper()
	data, err := wire.Encode(&src)
	require.NoError(t, err)
	return &runner.Msg{
		Subject: topology.Subject(topology.SubjectSources, dataset), Dataset: dataset,
		Data: data, Delivered: 1, StreamSeq: seq.Add(1),
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// misbehaving is an HTTP server with one route per way a download can go.
func misbehaving(t *testing.T, small, big []byte) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	serve := func(b []byte, ct string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b)
		}
	}
	mux.HandleFunc("/small.csv", serve(small, "text/csv"))
	mux.HandleFunc("/big.bin", serve(big, "application/octet-stream"))
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "2")
		}
		http.Error(w, "nope", code)
	})
	mux.HandleFunc("/truncated", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("0123456789"))
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		conn, _, err := rc.Hijack()
		if err == nil {
			conn.Close()
		}
	})
	mux.HandleFunc("/truncated-big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(10<<20))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 3<<20))
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
	})
	mux.HandleFunc("/huge-length", serve(make([]byte, 2<<20), ""))
	mux.HandleFunc("/huge-chunked", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		block := make([]byte, 64<<10)
		for range 32 { // 2 MiB, no Content-Length
			if _, err := w.Write(block); err != nil {
				return
			}
			_ = rc.Flush()
		}
	})
	mux.HandleFunc("/idle", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("id,name\n"))
		_ = http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			http.Error(w, "client did not accept gzip", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "text/csv")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(small)
		_ = zw.Close()
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" || r.UserAgent() != "trainfeed/0.1" {
			http.Error(w, "wrong headers", http.StatusForbidden)
			return
		}
		_, _ = w.Write(small)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type outcome int

const (
	ok outcome = iota
	transient
	permanent
)

func (o outcome) check(t *testing.T, err error) {
	t.Helper()
	switch o {
	case ok:
		require.NoError(t, err)
	case transient:
		require.Error(t, err)
		require.False(t, runner.IsPermanent(err), "want a transient error, got permanent: %v", err)
	case permanent:
		require.Error(t, err)
		require.True(t, runner.IsPermanent(err), "want a permanent error, got transient: %v", err)
	}
}

func TestHandleHTTP(t *testing.T) {
	e := newEnv(t)
	small := randomBytes(300<<10, 1)
	big := randomBytes(20<<20, 2)
	srv := misbehaving(t, small, big)
	spoolDir := t.TempDir()
	base := fetch.Config{SpoolMemory: 1 << 20, SpoolDir: spoolDir}

	tests := []struct {
		name     string
		path     string
		headers  map[string]string
		cfg      func(*fetch.Config)
		want     outcome
		wantErr  string // in the error
		wantBody []byte
		wantCT   string
	}{
		{name: "small body", path: "/small.csv", wantBody: small, wantCT: "text/csv"},
		{name: "body larger than spool memory", path: "/big.bin", wantBody: big, wantCT: "application/octet-stream"},
		{
			name: "spool budget spent: straight to disk", path: "/big.bin", wantBody: big, wantCT: "application/octet-stream",
			cfg: func(c *fetch.Config) { c.SpoolBudget = 1 },
		},
		{name: "gzip decoded", path: "/gzip", wantBody: small, wantCT: "text/csv"},
		{name: "source headers sent", path: "/headers", headers: map[string]string{"Authorization": "Bearer t0ken"}, wantBody: small,
			wantCT: "application/octet-stream"}, // sniffed by net/http's server
		{name: "204 stores an empty body", path: "/status/204", wantBody: []byte{}, wantCT: "text/plain; charset=utf-8"},
		{name: "404", path: "/status/404", want: permanent, wantErr: "404 Not Found"},
		{name: "403", path: "/status/403", want: permanent, wantErr: "403 Forbidden"},
		{name: "503", path: "/status/503", want: transient, wantErr: "503 Service Unavailable"},
		{name: "429", path: "/status/429", want: transient, wantErr: "429 Too Many Requests"},
		{name: "408", path: "/status/408", want: transient},
		{name: "truncated body", path: "/truncated", want: transient, wantErr: "unexpected EOF"},
		{name: "truncated body larger than spool memory", path: "/truncated-big", want: transient, wantErr: "unexpected EOF"},
		{
			name: "Content-Length over max", path: "/huge-length", want: permanent, wantErr: "body larger than 1048576 bytes",
			cfg: func(c *fetch.Config) { c.MaxBodyBytes = 1 << 20 },
		},
		{
			name: "chunked body over max", path: "/huge-chunked", want: permanent, wantErr: "body larger than 1048576 bytes",
			cfg: func(c *fetch.Config) { c.MaxBodyBytes = 1 << 20 },
		},
		{
			name: "idle body", path: "/idle", want: transient, wantErr: "no data for 300ms",
			cfg: func(c *fetch.Config) { c.IdleBodyTimeout = 300 * time.Millisecond },
		},
		{
			name: "whole fetch timeout", path: "/idle", want: transient, wantErr: "deadline exceeded",
			cfg: func(c *fetch.Config) { c.Timeout = 300 * time.Millisecond },
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			h := e.handler(t, cfg)
			dataset := fmt.Sprintf("http%d", i)
			src := wire.Source{ID: fmt.Sprintf("http-%d", i), URL: srv.URL + tt.path, Format: "csv", Headers: tt.headers}
			start := time.Now()
			err := h.Handle(context.Background(), msg(t, dataset, src))
			tt.want.check(t, err)
			require.Less(t, time.Since(start), 4*time.Second)
			f, published := e.fetched(t, dataset)
			e.noUploadsLeft(t)
			if tt.want != ok {
				require.ErrorContains(t, err, tt.wantErr)
				require.False(t, published, "a failed fetch must publish nothing")
				return
			}
			require.True(t, published)
			sum := hexSHA(tt.wantBody)
			assert.Equal(t, src.ID, f.SourceID)
			assert.Equal(t, dataset, f.Dataset)
			assert.Equal(t, src.URL, f.URL)
			assert.Equal(t, "csv", f.Format)
			assert.Equal(t, "sha256/"+sum, f.Object)
			assert.Equal(t, sum, f.SHA256)
			assert.Equal(t, int64(len(tt.wantBody)), f.Size)
			assert.Equal(t, tt.wantCT, f.ContentType)
			assert.False(t, f.FromCache)
			assert.WithinDuration(t, time.Now(), f.FetchedAt, 30*time.Second)
			require.True(t, bytes.Equal(tt.wantBody, e.object(t, f.Object)), "stored body differs")
			left, err := os.ReadDir(spoolDir)
			require.NoError(t, err)
			require.Empty(t, left, "spool files must be removed")
		})
	}
}

func TestHandleSourceIdentity(t *testing.T) {
	e := newEnv(t)
	srv := misbehaving(t, []byte("a,b\n1,2\n"), nil)
	h := e.handler(t, fetch.Config{})

	// No id: named after the stream sequence. Another dataset: the subject wins.
	m := msg(t, "subjectds", wire.Source{Dataset: "otherds", URL: srv.URL + "/small.csv"})
	require.NoError(t, h.Handle(context.Background(), m))
	f, published := e.fetched(t, "subjectds")
	require.True(t, published)
	require.Equal(t, fmt.Sprintf("s%d", m.StreamSeq), f.SourceID)
	require.Equal(t, "subjectds", f.Dataset)
	_, published = e.fetched(t, "otherds")
	require.False(t, published)

	// A JSON source, as any NATS client may publish it.
	j := &runner.Msg{
		Subject: topology.Subject(topology.SubjectSources, "jsonds"), Dataset: "jsonds", StreamSeq: 7,
		Data: []byte(`{"id":"j1","url":"` + srv.URL + `/small.csv"}`),
	}
	require.NoError(t, h.Handle(context.Background(), j))
	f, published = e.fetched(t, "jsonds")
	require.True(t, published)
	require.Equal(t, "j1", f.SourceID)
}

func TestHandleStoresSameBodyOnce(t *testing.T) {
	e := newEnv(t)
	body := randomBytes(200<<10, 3)
	srv := misbehaving(t, body, nil)
	h := e.handler(t, fetch.Config{})
	ctx := context.Background()

	name := "sha256/" + hexSHA(body)
	require.NoError(t, h.Handle(ctx, msg(t, "dup", wire.Source{ID: "one", URL: srv.URL + "/small.csv"})))
	first, err := e.topo.Bodies.GetInfo(ctx, name)
	require.NoError(t, err)
	require.NoError(t, h.Handle(ctx, msg(t, "dup", wire.Source{ID: "two", URL: srv.URL + "/headers?x=1",
		Headers: map[string]string{"Authorization": "Bearer t0ken"}})))
	second, err := e.topo.Bodies.GetInfo(ctx, name)
	require.NoError(t, err)
	require.Equal(t, first.NUID, second.NUID, "a stored body is not uploaded again")

	s, err := e.js.Stream(ctx, topology.StreamFetched)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs, "each source gets its Fetched")

	objects, err := e.topo.Bodies.List(ctx)
	require.NoError(t, err)
	require.Len(t, objects, 1)
	require.Equal(t, name, objects[0].Name)
	require.Equal(t, "text/csv", objects[0].Headers.Get("Content-Type"))
}

func TestHandleLocal(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	outside := t.TempDir()
	content := []byte("id,name\n1,ada\n2,grace\n")
	require.NoError(t, os.Mkdir(filepath.Join(root, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "data", "a.csv"), content, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("top secret"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(root, "escape.csv")))
	require.NoError(t, os.Symlink(filepath.Join(root, "data", "a.csv"), filepath.Join(root, "inside.csv")))
	inRoot := filepath.Join(root, "data", "a.csv")

	h := e.handler(t, fetch.Config{Root: root})
	noRoot := e.handler(t, fetch.Config{})

	tests := []struct {
		name    string
		h       *fetch.Handler
		url     string
		data    []byte // raw message data instead of a source with url
		want    outcome
		wantErr string
	}{
		{name: "file URL", url: "file://" + inRoot},
		{name: "absolute path", url: inRoot},
		{name: "relative path", url: "data/a.csv"},
		{name: "dot path", url: "./data/../data/a.csv"},
		{name: "symlink inside root", url: "inside.csv"},
		{name: "relative path escaping root", url: "../" + filepath.Base(outside) + "/secret.csv", want: permanent, wantErr: "outside the root"},
		{name: "absolute path outside root", url: filepath.Join(outside, "secret.csv"), want: permanent, wantErr: "outside the root"},
		{name: "file URL outside root", url: "file://" + filepath.Join(outside, "secret.csv"), want: permanent, wantErr: "outside the root"},
		{name: "symlink escaping root", url: "escape.csv", want: permanent, wantErr: "outside the root"},
		{name: "missing file", url: "data/nope.csv", want: permanent, wantErr: "no such file"},
		{name: "folder", url: "data", want: permanent, wantErr: "is a folder"},
		{name: "file URL with a host", url: "file://example.com/data/a.csv", want: permanent, wantErr: "host"},
		{name: "no root configured", h: noRoot, url: inRoot, want: permanent, wantErr: "not allowed"},
		{name: "ftp", url: "ftp://x/y.csv", want: permanent, wantErr: `unsupported scheme "ftp"`},
		{name: "other scheme", url: "mailto:someone@example.com", want: permanent, wantErr: "unsupported scheme"},
		{name: "http without host", url: "http:///a.csv", want: permanent, wantErr: "no host"},
		{name: "unparsable URL", url: "http://[::1/a.csv", want: permanent, wantErr: "unsupported URL"},
		{name: "garbage JSON", data: []byte(`{"url": "http://x/`), want: permanent, wantErr: "malformed source"},
		{name: "garbage msgpack", data: []byte{0xc1, 0x00, 0x13}, want: permanent, wantErr: "malformed source"},
		{name: "no url", data: []byte(`{"id":"x"}`), want: permanent, wantErr: "no url"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hh := tt.h
			if hh == nil {
				hh = h
			}
			dataset := fmt.Sprintf("local%d", i)
			m := msg(t, dataset, wire.Source{ID: fmt.Sprintf("local-%d", i), URL: tt.url})
			if tt.data != nil {
				m.Data = tt.data
			}
			err := hh.Handle(context.Background(), m)
			tt.want.check(t, err)
			f, published := e.fetched(t, dataset)
			e.noUploadsLeft(t)
			if tt.want != ok {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "top secret", "errors never hold file content")
				require.False(t, published)
				return
			}
			require.True(t, published)
			require.Equal(t, hexSHA(content), f.SHA256)
			require.Equal(t, int64(len(content)), f.Size)
			require.Equal(t, mime.TypeByExtension(".csv"), f.ContentType)
			require.Equal(t, content, e.object(t, f.Object))
		})
	}
}

func TestHandleUntrustedCertificateIsPermanent(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("x"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake fails on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	err := e.handler(t, fetch.Config{}).Handle(context.Background(), msg(t, "tls", wire.Source{URL: srv.URL + "/a.csv"}))
	permanent.check(t, err)
	require.ErrorContains(t, err, "certificate")
}

func TestConfigValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name    string
		cfg     fetch.Config
		wantErr string
	}{
		{name: "zero is valid", cfg: fetch.Config{}},
		{name: "root", cfg: fetch.Config{Root: t.TempDir(), SpoolDir: t.TempDir()}},
		{name: "negative max body", cfg: fetch.Config{MaxBodyBytes: -1}, wantErr: "max body bytes"},
		{name: "negative timeout", cfg: fetch.Config{IdleBodyTimeout: -time.Second}, wantErr: "idle body timeout"},
		{name: "negative conns", cfg: fetch.Config{MaxConnsPerHost: -1}, wantErr: "max conns per host"},
		{name: "missing root", cfg: fetch.Config{Root: filepath.Join(file, "nope")}, wantErr: "root"},
		{name: "root is a file", cfg: fetch.Config{Root: file}, wantErr: "not a folder"},
		{name: "spool dir is a file", cfg: fetch.Config{SpoolDir: file}, wantErr: "not a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// A source whose subject does not end in exactly one valid dataset token
// fails with that reason instead of landing in the last token's dataset.
func TestHandleRefusesSubjectsWithoutOneDataset(t *testing.T) {
	e := newEnv(t)
	h := e.handler(t, fetch.Config{})
	for _, subject := range []string{"trainfeed.sources.teamA.web", "trainfeed.sources.we@b", "trainfeed.other.web"} {
		t.Run(subject, func(t *testing.T) {
			m := &runner.Msg{Subject: subject, Dataset: topology.DatasetOf(subject), Delivered: 1,
				Data: []byte(`{"url": "https://example.com/a.csv"}`)}
			err := h.Handle(context.Background(), m)
			require.True(t, runner.IsPermanent(err), "%v", err)
			require.ErrorContains(t, err, "subject "+subject+" names no dataset: publish sources to trainfeed.sources.<dataset>")
		})
	}
}
