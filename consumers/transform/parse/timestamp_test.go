package parse

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestParseTimestamps(t *testing.T) {
	ts := func(s string) any {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v.UTC()
	}
	tests := []struct {
		name, format, input string
		want                []col
	}{
		{
			name:  "csv",
			input: "t,d,mixed,num\n2024-05-01T12:30:00Z,2024-05-01,2024-05-01,2024\n2024-05-01 14:30:00.123456789+02:00,1999-12-31,soon,2025\n,,,\n",
			want: []col{
				{"t", wire.TypeTimestamp, []any{ts("2024-05-01T12:30:00Z"), ts("2024-05-01T12:30:00.123456Z"), nil}},
				{"d", wire.TypeTimestamp, []any{ts("2024-05-01T00:00:00Z"), ts("1999-12-31T00:00:00Z"), nil}},
				{"mixed", wire.TypeString, []any{"2024-05-01", "soon", nil}},
				{"num", wire.TypeInt, []any{int64(2024), int64(2025), nil}},
			},
		},
		{
			name:   "jsonl",
			format: "jsonl",
			input:  "{\"t\":\"2024-05-01T12:30:00.5-01:30\",\"n\":1}\n{\"t\":null,\"n\":\"2024-05-01\"}\n",
			want: []col{
				{"t", wire.TypeTimestamp, []any{ts("2024-05-01T14:00:00.5Z"), nil}},
				{"n", wire.TypeString, []any{"1", "2024-05-01"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			require.NoError(t, err)
			require.Len(t, batches, 1)
			requireWellFormed(t, batches[0])
			require.Equal(t, tt.want, cols(batches[0]))
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	good := map[string]string{
		"2024-01-02":                   "2024-01-02T00:00:00Z",
		"2024-02-29T23:59:59Z":         "2024-02-29T23:59:59Z",
		"2024-01-02t03:04:05z":         "2024-01-02T03:04:05Z",
		"2024-01-02T03:04":             "2024-01-02T03:04:00Z",
		"2024-01-02T03:04:05.1":        "2024-01-02T03:04:05.1Z",
		"2024-01-02T03:04:05,25+0100":  "2024-01-02T02:04:05.25Z",
		"2024-01-02T03:04:05-07":       "2024-01-02T10:04:05Z",
		"1969-12-31T23:59:59.9999999Z": "1969-12-31T23:59:59.999999Z",
		"2016-12-31T23:59:60Z":         "2017-01-01T00:00:00Z",
		"0001-01-01T00:00:00Z":         "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999Z":  "9999-12-31T23:59:59.999999Z",
	}
	for in, want := range good {
		us, ok := Timestamp(in)
		require.True(t, ok, in)
		require.Equal(t, want, time.UnixMicro(us).UTC().Format(time.RFC3339Nano), in)
	}
	for _, in := range []string{
		"", "2024", "2024-1-02", "2024-13-01", "2023-02-29", "2024-01-32", "2024-01-02T", "2024-01-02T24:00",
		"2024-01-02T03:60", "2024-01-02T03:04:61", "2024-01-02T03:04:05.", "2024-01-02T03:04:05+1", "2024-01-02T03:04:05+01:0",
		"2024-01-02T03:04:05 Z", "2024-01-02X03:04", "+2024-01-02", "2024-01-02T03:04:05+24:00", "２０２４-01-02",
	} {
		_, ok := Timestamp(in)
		require.False(t, ok, in)
	}
}
