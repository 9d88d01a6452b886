// Package proctest is a test kit for tests that watch output as it is
// written: a child process's stdout and stderr, a logger's lines.
package proctest

import (
	"bytes"
	"sync"
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
