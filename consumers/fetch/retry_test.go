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
