// Package proctest is a test kit for child processes and for output a
// test watches while it is written: a Proc's stdout and stderr, a logger's
// lines.
package proctest

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe to write from one goroutine (a process's
// output copier, a logger) while a test reads it from another.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Proc is a child process a test started: its output collected in a
// Buffer, its exit awaited in the background, and it is killed when the
// test ends (its output printed if the test failed).
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	err  error
}

// Start starts cmd, its stdout and stderr collected (and copied to also,
// when not nil). It fails t when cmd does not start.
func Start(t testing.TB, name string, cmd *exec.Cmd, also io.Writer) *Proc {
	t.Helper()
	p := &Proc{Name: name, Cmd: cmd, out: &Buffer{}, done: make(chan struct{})}
	var w io.Writer = p.out
	if also != nil {
		w = io.MultiWriter(p.out, also)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- %s ---\n%s", name, p.out.String())
		}
	})
	return p
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits until the process exits and returns its exit code; -1 when
// it did not exit within and was killed.
func (p *Proc) Wait(within time.Duration) int {
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.Cmd.Process.Kill()
		<-p.done
		return -1
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// Stop sends SIGTERM and returns the exit code (see Wait).
func (p *Proc) Stop(within time.Duration) int {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(within)
}

// WaitOutput waits until the process has printed substr, failing t after
// within.
func (p *Proc) WaitOutput(t testing.TB, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.Output(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q:\n%s", p.Name, substr, p.Output())
		}
		select {
		case <-p.done:
			if !strings.Contains(p.Output(), substr) {
				t.Fatalf("%s exited without printing %q:\n%s", p.Name, substr, p.Output())
			}
		case <-time.After(20 * time.Millisecond):
		}
	}
}
