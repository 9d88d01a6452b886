package faulttest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/cluster"
)

// The binaries the tests run: the trainfeed CLI and the natsd helper, both
// built without the race detector so that the processes run at full speed
// under go test -race.
var trainfeedBin, natsdBin string

// sources are the files trainfeedBin was built from.
var sources []string

// A change to what the fault tests run runs them again: the binary's
// sources are part of this package's cached test result.
func TestBinaryIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds no binary")
	}
	require.NotEmpty(t, sources)
	cluster.TouchSources(t, sources)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips
	}
	dir, err := os.MkdirTemp("", "trainfeed-faulttest-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if trainfeedBin, sources, err = cluster.Build(dir, "trainfeed", "github.com/trainfeed/trainfeed/cmd/trainfeed"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if natsdBin, err = cluster.BuildNATSD(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// member is a trainfeed process: a stage member, or a one-shot command.
type member struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // of Wait, once done is closed
}

// start starts trainfeed with args, its output in a log file that the test
// prints (the tail of) if it fails. The process is killed when the test ends
// if it still runs.
func start(t *testing.T, name string, args ...string) *member {
	t.Helper()
	dir := os.Getenv("TRAINFEED_FAULTTEST_LOGS") // keep the logs there, for a post-mortem
	if dir == "" {
		dir = t.TempDir()
	}
	m := &member{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m.cmd = exec.Command(trainfeedBin, args...)
	m.cmd.Stdout, m.cmd.Stderr = f, f
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			data, _ := os.ReadFile(m.log)
			if len(data) > 6<<10 {
				data = data[len(data)-6<<10:]
			}
			t.Logf("--- %s (last 6 KiB) ---\n%s", name, data)
		}
	})
	return m
}

// kill kills the process with SIGKILL, as kill -9 does, and waits for it.
func (m *member) kill() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// dumpStacks asks a running process to print its goroutines and exit
// (SIGQUIT), for a post-mortem of a stall.
func (m *member) dumpStacks() {
	if !m.exited() {
		_ = m.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// exited reports whether the process has exited.
func (m *member) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and returns the exit code, or -1 if the process is
// still running after timeout (it is killed then).
func (m *member) stop(timeout time.Duration) int {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(timeout):
		m.kill()
		return -1
	}
	return exitCode(m.err)
}

// wait waits for the process to exit by itself and returns its exit code.
func (m *member) wait(timeout time.Duration) int {
	select {
	case <-m.done:
		return exitCode(m.err)
	case <-time.After(timeout):
		m.kill()
		return -1
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -2
	}
	return 0
}

// output returns what the process wrote so far.
func (m *member) output() string {
	data, _ := os.ReadFile(m.log)
	return string(data)
}
