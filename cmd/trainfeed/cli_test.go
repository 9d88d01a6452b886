package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/datasettest"
)

// bin is the trainfeed binary the CLI tests run as a user would.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trainfeed-cli-*")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "trainfeed")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build trainfeed:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func trainfeed(t *testing.T, dir string, args ...string) (stdout string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		return out.String(), ee.ExitCode()
	}
	return out.String(), 0
}

func TestREADMERunCommand(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(bin, "run", "--sources", "examples/sources.txt", "--out", out, "--dataset", "clicks", "-q")
	cmd.Dir = "../.."
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.Contains(t, stdout.String(), "sources: 5 ok, 0 failed")
	require.Empty(t, stderr.String(), "a clean run logs nothing")
	for ds, want := range map[string]int{"clicks": 2000, "flowers": 300, "reviews": 500, "events": 200} {
		ids, m := datasettest.ReadAll(t, out, ds)
		require.EqualValues(t, want, m.Records, ds)
		require.Len(t, ids, want, ds)
	}
}

// csvSources serves n CSV sources of rows rows each, ids unique across
// sources, source k after delay(k), and writes a sources file for them.
func csvSources(t *testing.T, n, rows int, delay func(k int) time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k int
		if _, err := fmt.Sscanf(r.URL.Path, "/src/%d.csv", &k); err != nil {
			http.NotFound(w, r)
			return
		}
		time.Sleep(delay(k))
		bw := bufio.NewWriter(w)
		fmt.Fprintln(bw, "id,value,text")
		for i := range rows {
			fmt.Fprintf(bw, "%d,%d.5,source %d row %d\n", k*rows+i, i, k, i)
		}
		bw.Flush()
	}))
	t.Cleanup(srv.Close)
	var b strings.Builder
	for k := range n {
		fmt.Fprintf(&b, "%s/src/%d.csv\n", srv.URL, k)
	}
	path := filepath.Join(t.TempDir(), "sources.txt")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// Killed with SIGKILL twice mid-way, then run again with the same
// arguments: every record once, every manifest entry matches its file, no
// file outside the manifest.
func TestRunResumesAfterKill9(t *testing.T) {
	const n, rows = 400, 250
	sources := csvSources(t, n, rows, func(int) time.Duration { return 20 * time.Millisecond })
	out := t.TempDir()
	args := []string{"run", "--sources", sources, "--out", out, "--chunk-records", "2000", "--allow-private", "-q"}
	for kill := range 2 {
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		// Wait until some chunks are committed, then kill at once.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			m, err := dataset.ReadManifest(out, "default")
			if err == nil && len(m.Chunks) > 3*(kill+1) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		m, err := dataset.ReadManifest(out, "default")
		require.NoError(t, err)
		require.Less(t, m.Records, int64(n*rows), "kill %d came after the run was over", kill+1)
	}
	stdout, code := trainfeed(t, ".", args...)
	require.Equal(t, 0, code, stdout)
	require.Contains(t, stdout, fmt.Sprintf("sources: %d ok, 0 failed", n))
	ids, m := datasettest.ReadAll(t, out, "default")
	require.EqualValues(t, n*rows, m.Records)
	require.Len(t, ids, n*rows)
	for id, k := range ids {
		require.Equal(t, 1, k, "id %d", id)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// follow, in another process, mirrors chunks while the run is going on.
func TestFollowWhileRunning(t *testing.T) {
	const n, rows = 40, 500
	// Sources trickle in over about two seconds; chunks flush every 200ms.
	sources := csvSources(t, n, rows, func(k int) time.Duration { return time.Duration(k) * 50 * time.Millisecond })
	out, mirror := t.TempDir(), t.TempDir()
	addr, runHTTP, followHTTP := freePort(t), freePort(t), freePort(t)
	run := exec.Command(bin, "run", "--sources", sources, "--out", out, "--max-age", "200ms",
		"--allow-private", "--listen", addr, "--http", runHTTP, "-q")
	run.Stderr = os.Stderr
	var runOut bytes.Buffer
	run.Stdout = &runOut
	require.NoError(t, run.Start())
	runDone := make(chan error, 1)
	go func() { runDone <- run.Wait() }()
	t.Cleanup(func() { _ = run.Process.Kill() })

	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, 20*time.Second, 20*time.Millisecond)
	follow := exec.Command(bin, "follow", "--nats", "nats://"+addr, "--dataset", "default", "--out", mirror, "--http", followHTTP)
	follow.Stderr = os.Stderr
	require.NoError(t, follow.Start())
	var followErr error
	followExited := make(chan struct{})
	go func() { followErr = follow.Wait(); close(followExited) }()
	t.Cleanup(func() {
		_ = follow.Process.Kill()
		<-followExited
	})

	// Both serve their operations endpoints while they run.
	for _, base := range []string{"http://" + runHTTP, "http://" + followHTTP} {
		require.Eventually(t, func() bool {
			code, _ := get(t, base+"/readyz")
			return code == http.StatusOK
		}, 10*time.Second, 20*time.Millisecond, "%s/readyz", base)
		code, body := get(t, base+"/metrics")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "go_goroutines")
	}
	_, body := get(t, "http://"+runHTTP+"/metrics")
	require.Contains(t, body, `trainfeed_stage_ack_window{stage="combine"}`)

	// The mirror has chunks before the run is over.
	var early int
	func() {
		for {
			select {
			case err := <-runDone:
				require.NoError(t, err)
				return
			case <-time.After(10 * time.Millisecond):
				if m, err := dataset.ReadManifest(mirror, "default"); err == nil && len(m.Chunks) > early {
					early = len(m.Chunks)
				}
			}
		}
	}()
	require.Positive(t, early, "follow mirrored no chunk while the run was going on")
	require.Contains(t, runOut.String(), fmt.Sprintf("sources: %d ok", n))
	// Read the mirror once follow has stopped: a chunk it is still
	// downloading is a temp file in the folder until then. The run's
	// server is gone with the run, so follow may have stopped already, on
	// a download the server's end cut short; if not, SIGTERM stops it
	// cleanly.
	select {
	case <-followExited:
		t.Logf("follow stopped with the run's server: %v", followErr)
	default:
		require.NoError(t, follow.Process.Signal(syscall.SIGTERM))
		select {
		case <-followExited:
			require.NoError(t, followErr, "follow stops cleanly on SIGTERM")
		case <-time.After(15 * time.Second):
			t.Fatal("follow did not stop within 15s of SIGTERM")
		}
	}
	ids, m := datasettest.ReadAll(t, mirror, "default")
	require.GreaterOrEqual(t, len(m.Chunks), early)
	for id, k := range ids {
		require.Equal(t, 1, k, "id %d", id)
	}
	src, err := dataset.ReadManifest(out, "default")
	require.NoError(t, err)
	for i, ch := range m.Chunks {
		require.Equal(t, src.Chunks[i].SHA256, ch.SHA256)
	}
}
