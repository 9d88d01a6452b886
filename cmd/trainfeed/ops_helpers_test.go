package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
	"github.com/trainfeed/trainfeed/internal/proctest"
)

// opsAddr returns a free loopback host:port.
func opsAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// serveProc is a running `trainfeed serve`.
type serveProc struct {
	*proctest.Proc
	http string // host:port
	nats string // nats://host:port
}

// startServe starts `trainfeed serve` with args plus --http on a free port
// (and, unless args name --nats, an embedded server listening on a free
// port), and waits until its HTTP API answers. It is killed when the test
// ends if it is still running.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{http: opsAddr(t)}
	args = append([]string{"serve", "--http", p.http, "--allow-private"}, args...)
	external := false
	for i, a := range args {
		if a == "--nats" {
			external, p.nats = true, args[i+1]
		}
	}
	if !external {
		addr := opsAddr(t)
		p.nats = "nats://" + addr
		args = append(args, "--listen", addr)
	}
	p.Proc = proctest.Start(t, "serve", exec.Command(bin, args...), os.Stderr)
	require.Eventually(t, func() bool {
		select {
		case <-p.Done():
			t.Fatalf("serve exited early: %s", p.Output())
		default:
		}
		resp, err := http.Get("http://" + p.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "serve did not come up")
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *serveProc) stop(t *testing.T, within time.Duration) {
	t.Helper()
	code := p.Stop(within)
	require.NotEqual(t, -1, code, "serve did not stop within %s after SIGTERM", within)
	require.Equal(t, 0, code, "serve exit code; output:\n%s", p.Output())
	require.Contains(t, p.Output(), "trainfeed serve: stopped")
}

// postSources POSTs body to serve's /v1/sources.
func (p *serveProc) postSources(t *testing.T, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Post("http://"+p.http+"/v1/sources", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp, out
}

// get returns the body of an HTTP GET on serve.
func (p *serveProc) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.http + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// tf runs the trainfeed binary and returns its stdout, stderr and exit code.
func tf(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run %v: %v", args, err)
		return out.String(), errb.String(), ee.ExitCode()
	}
	return out.String(), errb.String(), 0
}

// flakySource serves CSV sources /src/<k>.csv of rows rows each (ids unique
// across sources) after delay; while broken, the paths in fail answer with
// their status instead (503s with Retry-After: 1).
type flakySource struct {
	*httptest.Server
	rows   int
	delay  time.Duration
	broken atomic.Bool
	fail   map[int]int // source k -> status while broken
	hits   atomic.Int64
}

func newFlakySource(t *testing.T, rows int, delay time.Duration, fail map[int]int) *flakySource {
	t.Helper()
	f := &flakySource{rows: rows, delay: delay, fail: fail}
	f.broken.Store(len(fail) > 0)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		var k int
		if _, err := fmt.Sscanf(r.URL.Path, "/src/%d.csv", &k); err != nil {
			http.NotFound(w, r)
			return
		}
		if code, ok := f.fail[k]; ok && f.broken.Load() {
			if code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, "broken on purpose", code)
			return
		}
		time.Sleep(f.delay)
		bw := bufio.NewWriter(w)
		fmt.Fprintln(bw, "id,value,text")
		for i := range f.rows {
			fmt.Fprintf(bw, "%d,%d.5,source %d row %d\n", k*f.rows+i, i, k, i)
		}
		_ = bw.Flush()
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flakySource) url(k int) string { return fmt.Sprintf("%s/src/%d.csv", f.URL, k) }

// jsonSources returns a JSON array of sources k in [from, to) with ids "src-<k>".
func (f *flakySource) jsonSources(from, to int) string {
	var parts []string
	for k := from; k < to; k++ {
		parts = append(parts, fmt.Sprintf(`{"id": "src-%d", "url": %q}`, k, f.url(k)))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// datasetIDs reads a dataset through its manifest (none yet: empty) and
// returns how often each id occurs and the records listed; every listed file
// must match its manifest entry.
func datasetIDs(t *testing.T, out, ds string) (map[int64]int, int64) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(out, ds, dataset.ManifestFile)); err != nil {
		return map[int64]int{}, 0 // nothing committed yet
	}
	ids, m := datasettest.Read(t, out, ds)
	return ids, m.Records
}

// waitRecords waits until the dataset holds want records, and checks that
// each id in [0, want) is there exactly once.
func waitRecords(t *testing.T, out, dataset string, want int64, within time.Duration) {
	t.Helper()
	var got int64
	require.Eventually(t, func() bool {
		_, got = datasetIDs(t, out, dataset)
		return got >= want
	}, within, 50*time.Millisecond, "dataset %s has %d records, want %d", dataset, got, want)
	ids, total := datasetIDs(t, out, dataset)
	require.Equal(t, want, total, "records in the manifest")
	require.Len(t, ids, int(want))
	for id, n := range ids {
		require.Equal(t, 1, n, "id %d", id)
		require.Less(t, id, want)
	}
}

// dlqEntries lists the dead letters through `trainfeed dlq list --json`.
func dlqEntries(t *testing.T, natsURL string, args ...string) []map[string]any {
	t.Helper()
	out, stderr, code := tf(t, append([]string{"dlq", "list", "--json", "--nats", natsURL}, args...)...)
	require.Equal(t, 0, code, stderr)
	var entries []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		entries = append(entries, e)
	}
	return entries
}
