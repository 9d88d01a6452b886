package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// blockSize is the size of the memory blocks a spool holds a body's head in.
const blockSize = 64 << 10

// blocks recycles full-size memory blocks between downloads.
var blocks = sync.Pool{New: func() any { b := make([]byte, 0, blockSize); return &b }}

// budget is the memory all spools of a handler may hold together. It is
// safe for concurrent use.
type budget struct {
	mu   sync.Mutex
	left int64
}

func newBudget(total int64) *budget { return &budget{left: total} }

// reserve takes n bytes from the budget, or reports false when fewer are left.
func (b *budget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left < n {
		return false
	}
	b.left -= n
	return true
}

// release gives n reserved bytes back.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// spool holds a body between download and upload: its first limit bytes in
// memory blocks (allocated as needed, never more than limit in all, each
// reserved from the shared budget), the rest in a temporary file in dir. A
// spool that cannot reserve its next block spills to the file from then on,
// so all spools together never hold more memory than the budget. It is not
// safe for concurrent use.
type spool struct {
	dir    string
	limit  int64
	budget *budget
	mem    []*[]byte
	memCap int64
	file   *os.File
}

func newSpool(dir string, limit int64, b *budget) *spool {
	return &spool{dir: dir, limit: limit, budget: b}
}

// Write appends p to the spool.
func (s *spool) Write(p []byte) (int, error) {
	n := 0
	for s.file == nil && len(p) > 0 {
		var last *[]byte
		if len(s.mem) > 0 {
			last = s.mem[len(s.mem)-1]
		}
		if last == nil || len(*last) == cap(*last) {
			size := min(blockSize, s.limit-s.memCap)
			if size <= 0 || !s.budget.reserve(size) {
				s.limit = s.memCap // spill from now on
				break
			}
			last = s.block(size)
			s.mem = append(s.mem, last)
			s.memCap += int64(cap(*last))
		}
		k := min(len(p), cap(*last)-len(*last))
		*last = append(*last, p[:k]...)
		p, n = p[k:], n+k
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "trainfeed-fetch-*.body")
		if err != nil {
			return n, fmt.Errorf("spool body: %w", err)
		}
		s.file = f
	}
	k, err := s.file.Write(p)
	if err != nil {
		err = fmt.Errorf("spool body: %w", err)
	}
	return n + k, err
}

// block returns an empty block of capacity size.
func (s *spool) block(size int64) *[]byte {
	if size == blockSize {
		return blocks.Get().(*[]byte)
	}
	b := make([]byte, 0, size)
	return &b
}

// Reader returns a reader of everything written, from the start.
func (s *spool) Reader() (io.Reader, error) {
	rs := make([]io.Reader, 0, len(s.mem)+1)
	for _, b := range s.mem {
		rs = append(rs, bytes.NewReader(*b))
	}
	if s.file != nil {
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("spool body: %w", err)
		}
		rs = append(rs, s.file)
	}
	return io.MultiReader(rs...), nil
}

// Close releases the memory blocks and removes the temporary file.
func (s *spool) Close() error {
	for _, b := range s.mem {
		if cap(*b) == blockSize {
			*b = (*b)[:0]
			blocks.Put(b)
		}
	}
	s.budget.release(s.memCap)
	s.mem, s.memCap = nil, 0
	if s.file == nil {
		return nil
	}
	err := errors.Join(s.file.Close(), os.Remove(s.file.Name()))
	s.file = nil
	return err
}
