package fetch

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{header: "2", want: 2 * time.Second, ok: true},
		{header: " 120 ", want: 2 * time.Minute, ok: true},
		{header: "86400", want: maxRetryAfter, ok: true},
		{header: now.Add(30 * time.Second).Format(http.TimeFormat), want: 30 * time.Second, ok: true},
		{header: now.Add(time.Hour).Format(http.TimeFormat), want: maxRetryAfter, ok: true},
		{header: now.Add(-time.Minute).Format(http.TimeFormat)},
		{header: "0"},
		{header: "-5"},
		{header: ""},
		{header: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.header, now)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSpoolNeverHoldsMoreThanItsMemory(t *testing.T) {
	for _, limit := range []int64{1, 1000, blockSize, blockSize + 1, 3 * blockSize} {
		sp := newSpool(t.TempDir(), limit)
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
