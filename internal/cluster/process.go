package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildNATSD builds the natsd helper (a nats-server that reads a
// configuration file) into dir and returns its path. Tests call it once, from
// TestMain; it is built without the race detector so that the servers run at
// full speed under `go test -race`.
func BuildNATSD(dir string) (string, error) {
	bin, _, err := Build(dir, "natsd", "github.com/trainfeed/trainfeed/internal/cluster/natsd")
	return bin, err
}

// Build builds the command pkg into dir/name (without the race detector)
// and returns its path and the source files of this module that the build
// compiled. go test caches a result by the files the tests touched, and a
// binary built from TestMain is not among them: a test that runs it calls
// TouchSources with them, so that a change to any of them runs the test
// again rather than passing from the cache.
func Build(dir, name, pkg string) (bin string, sources []string, err error) {
	bin = filepath.Join(dir, name)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("build %s: %w\n%s", name, err, out)
	}
	sources, err = Sources(pkg)
	if err != nil {
		return "", nil, err
	}
	return bin, sources, nil
}

// Sources returns the source files of this module that building pkgs
// compiles, for TouchSources.
func Sources(pkgs ...string) ([]string, error) {
	args := append([]string{"list", "-deps",
		"-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
	}, pkgs...)
	list, err := exec.Command("go", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("list the sources of %v: %w", pkgs, err)
	}
	return strings.Fields(string(list)), nil
}

// TouchSources reads the metadata of each file during a test, which makes
// them part of the test result's cache key (see Build).
func TouchSources(t testing.TB, files []string) {
	t.Helper()
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("source of a binary the tests run: %v", err)
		}
	}
}

// ProcessCluster is a cluster of nats-servers, each a child process.
type ProcessCluster struct {
	tb    testing.TB
	bin   string
	Nodes []*Node
	procs []*exec.Cmd // nil while a member is down
	conf  []string
	logs  []string
}

// StartProcesses starts n clustered JetStream servers as child processes of
// bin (see BuildNATSD) and waits until they are routed to each other and
// place replicated streams.
// The members are stopped when the test ends; their logs are printed if it
// failed.
func StartProcesses(tb testing.TB, bin string, n int) *ProcessCluster {
	tb.Helper()
	dir := tb.TempDir()
	c := &ProcessCluster{tb: tb, bin: bin, Nodes: nodes(tb, n, dir), procs: make([]*exec.Cmd, n)}
	for _, nd := range c.Nodes {
		path := filepath.Join(dir, nd.Name+".conf")
		if err := os.WriteFile(path, []byte(Config(nd, c.Nodes)), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.conf = append(c.conf, path)
		c.logs = append(c.logs, filepath.Join(dir, nd.Name+".log"))
	}
	tb.Cleanup(func() {
		for i := range c.procs {
			c.Stop(i)
		}
		if tb.Failed() {
			for i, l := range c.logs {
				if data, err := os.ReadFile(l); err == nil {
					tb.Logf("--- %s log (last 4 KiB) ---\n%s", c.Nodes[i].Name, tail(data, 4<<10))
				}
			}
		}
	})
	for i := range c.Nodes {
		c.Start(i)
	}
	c.WaitReady(30 * time.Second)
	return c
}

// URLs returns every member's client URL, comma-separated.
func (c *ProcessCluster) URLs() string { return urls(c.Nodes) }

// Start starts member i (again) on its store and ports; it does not wait.
func (c *ProcessCluster) Start(i int) {
	c.tb.Helper()
	if c.procs[i] != nil {
		c.tb.Fatalf("cluster %s: already running", c.Nodes[i].Name)
	}
	log, err := os.OpenFile(c.logs[i], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(c.bin, c.conf[i])
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("cluster %s: %v", c.Nodes[i].Name, err)
	}
	c.procs[i] = cmd
}

// Kill kills member i with SIGKILL, as kill -9 does, and reaps it.
func (c *ProcessCluster) Kill(i int) {
	if cmd := c.procs[i]; cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		c.procs[i] = nil
	}
}

// Stop stops member i with SIGTERM, or SIGKILL after 10s.
func (c *ProcessCluster) Stop(i int) {
	cmd := c.procs[i]
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	c.procs[i] = nil
}

// Running reports whether member i runs.
func (c *ProcessCluster) Running(i int) bool { return c.procs[i] != nil }

// WaitReady waits until every running member sees all running members'
// client URLs and its JetStream meta layer is healthy, and the meta leader
// counts every running member as a current peer.
func (c *ProcessCluster) WaitReady(timeout time.Duration) {
	c.tb.Helper()
	running := 0
	for _, p := range c.procs {
		if p != nil {
			running++
		}
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		ready, led := true, false
		for i, nd := range c.Nodes {
			if c.procs[i] == nil {
				continue
			}
			var v struct {
				ConnectURLs []string `json:"connect_urls"`
			}
			if !getJSON(client, fmt.Sprintf("http://127.0.0.1:%d/varz", nd.HTTPPort), &v) || len(v.ConnectURLs) < running {
				ready = false
				break
			}
			var h struct {
				Status string `json:"status"`
			}
			if !getJSON(client, fmt.Sprintf("http://127.0.0.1:%d/healthz?js-meta-only=true", nd.HTTPPort), &h) || h.Status != "ok" {
				ready = false
				break
			}
			var j jsz
			if getJSON(client, fmt.Sprintf("http://127.0.0.1:%d/jsz", nd.HTTPPort), &j) {
				led = led || j.metaReady(nd.Name, running)
			}
		}
		if ready && led && placeable(c.URLs(), running) {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("cluster not ready after %s", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(client *http.Client, url string, v any) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
