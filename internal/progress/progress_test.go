package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// newTest returns a Reporter writing to a buffer on a clock the test moves.
func newTest(tty bool) (*Reporter, *bytes.Buffer, *time.Time) {
	var buf bytes.Buffer
	r := New(&buf)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	r.start = now
	r.tty = tty
	r.width = func() int { return 140 }
	return r, &buf, &now
}

func TestLines(t *testing.T) {
	r, buf, now := newTest(false)
	require.False(t, r.Terminal(), "a buffer is not a terminal")
	require.Equal(t, LineEvery, r.Every())
	for range 3 {
		r.Observe("fetch", &runner.Msg{}, runner.OutcomeAcked, 0)
	}
	r.Observe("fetch", &runner.Msg{}, runner.OutcomeRetried, 0)
	r.Observe("transform", &runner.Msg{}, runner.OutcomeAcked, 0)
	*now = now.Add(2 * time.Second)
	r.Update(0, 10, 0)
	*now = now.Add(2 * time.Second)
	r.Update(2, 10, 2000)
	*now = now.Add(2 * time.Second)
	r.Update(4, 10, 4000)
	r.Finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3)
	require.Equal(t, "progress: 0/10 sources done, fetched 3, transformed 1, 0 records, 0 records/s, ETA -, 2s elapsed", lines[0])
	// 4 sources in the last 4s: 6 left take 6s.
	require.Equal(t, "progress: 4/10 sources done, fetched 3, transformed 1, 4000 records, 1000 records/s, ETA 6s, 6s elapsed", lines[2])
}

func TestBar(t *testing.T) {
	r, buf, now := newTest(true)
	require.Equal(t, BarEvery, r.Every())
	*now = now.Add(time.Second)
	r.Update(5, 20, 50_000)
	out := buf.String()
	require.True(t, strings.HasPrefix(out, "\r["), out)
	require.Contains(t, out, "5/20 sources · fetched 0 · transformed 0 · 50.0k records · 50.0k rec/s · ETA 3s")
	require.Contains(t, out, "==========>", "a quarter of a 40-wide bar")
	buf.Reset()
	*now = now.Add(time.Second)
	r.Update(20, 20, 120_000)
	require.Contains(t, buf.String(), "[========================================] 20/20 sources")
	require.Contains(t, buf.String(), "done")
	width := len([]rune(strings.TrimPrefix(buf.String(), "\r")))
	buf.Reset()
	r.Finish()
	require.Equal(t, "\r"+strings.Repeat(" ", width)+"\r", buf.String(), "the bar is wiped for the summary")
}

func TestBarNarrowTerminal(t *testing.T) {
	r, buf, _ := newTest(true)
	r.width = func() int { return 60 }
	r.Update(1, 2, 10)
	require.NotContains(t, buf.String(), "[", "no room for a bar: the numbers only")
	require.Contains(t, buf.String(), "1/2 sources")
}

func TestHuman(t *testing.T) {
	for n, want := range map[float64]string{0: "0", 9999: "9999", 12_345: "12.3k", 2_500_000: "2.5M", 3e9: "3.0G"} {
		require.Equal(t, want, human(n))
	}
}
