package fetch

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpoolNeverHoldsMoreThanItsMemory(t *testing.T) {
	for _, limit := range []int64{1, 1000, blockSize, blockSize + 1, 3 * blockSize} {
		sp := newSpool(t.TempDir(), limit, newBudget(1<<30))
		var want []byte
		for i := range 40 {
			p := make([]byte, 7001*i%20000)
			for j := range p {
				p[j] = byte(i + j)
			}
			n, err := sp.Write(p)
			require.NoError(t, err)
			require.Equal(t, len(p), n)
			want = append(want, p...)
			require.LessOrEqual(t, sp.memCap, limit)
		}
		require.NotNil(t, sp.file, "a body larger than the memory limit spills to a file")
		r, err := sp.Reader()
		require.NoError(t, err)
		got := make([]byte, 0, len(want))
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		require.Equal(t, want, got)
		name := sp.file.Name()
		require.NoError(t, sp.Close())
		require.NoFileExists(t, name)
	}
}

// TestSpoolBudget runs many spools at once against a budget a few blocks
// large: together they never hold more than the budget in memory, the
// ones that find it spent spill to disk, every body reads back whole, and
// closing gives all the memory back.
func TestSpoolBudget(t *testing.T) {
	const total = 4 * blockSize
	b := newBudget(total)
	dir := t.TempDir()
	var held, peak atomic.Int64
	var spilled atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			sp := newSpool(dir, 8<<20, b)
			var want bytes.Buffer
			chunk := bytes.Repeat([]byte{byte(w)}, 10_000)
			for range 50 { // 500 KB each, 8 MB in all
				before := sp.memCap
				_, err := sp.Write(chunk)
				require.NoError(t, err)
				want.Write(chunk)
				if grew := sp.memCap - before; grew > 0 {
					n := held.Add(grew)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
				}
			}
			if sp.file != nil {
				spilled.Add(1)
			}
			r, err := sp.Reader()
			require.NoError(t, err)
			got, err := io.ReadAll(r)
			require.NoError(t, err)
			require.True(t, bytes.Equal(want.Bytes(), got), "spool %d reads back what was written", w)
			held.Add(-sp.memCap)
			require.NoError(t, sp.Close())
		})
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int64(total))
	require.Positive(t, peak.Load())
	require.Positive(t, spilled.Load(), "spools that found the budget spent spilled to disk")
	require.EqualValues(t, total, b.left, "all memory given back")
}
