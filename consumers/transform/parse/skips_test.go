package parse

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// skips returns the skipped rows of batches.
func skips(batches []*Batch) (listed []wire.SkippedRow, count int) {
	for _, b := range batches {
		listed = append(listed, b.Skipped...)
		count += b.SkippedRows
	}
	return listed, count
}

func TestParseSkipsMalformedRows(t *testing.T) {
	tests := []struct {
		name   string
		format string
		input  string
		ids    []any
		skips  []wire.SkippedRow
	}{
		{
			name:  "csv field count and quotes",
			input: "id,v\n1,a\n2\n3,b\n4,\"x\"y\n5,\"multi\nline\"\n6,c,extra\n7,d\n",
			ids:   []any{int64(1), int64(3), int64(5), int64(7)},
			skips: []wire.SkippedRow{
				{Line: 3, Reason: "wrong number of fields: got 1, want 2"},
				{Line: 5, Reason: `field 2: text after the closing " of a quoted field (write "" for a quote inside it)`},
				{Line: 8, Reason: "wrong number of fields: got 3, want 2"},
			},
		},
		{
			name:   "jsonl invalid lines",
			format: "jsonl",
			input:  "{\"id\":1}\n{\"id\":\n[2]\n\n{\"id\":3,}\n{\"id\":5}\n",
			ids:    []any{int64(1), int64(5)},
			skips: []wire.SkippedRow{
				{Line: 2, Reason: "invalid json: unexpected end of line, want value"},
				{Line: 3, Reason: "not a json object"},
				{Line: 5, Reason: "invalid json at byte 9: unexpected '}', want object key"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, MaxBatchRows: 1})
			require.NoError(t, err)
			require.EqualValues(t, len(tt.ids), n)
			require.Equal(t, tt.ids, values(batches, "id"))
			listed, count := skips(batches)
			require.Equal(t, tt.skips, listed)
			require.Equal(t, len(tt.skips), count)
			for _, b := range batches {
				requireWellFormed(t, b)
			}

			_, _, err = parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, Strict: true})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.skips[0].Line, pe.Line)
			require.ErrorContains(t, err, tt.skips[0].Reason)
		})
	}
}

func TestParseListsAtMost100Skips(t *testing.T) {
	var in strings.Builder
	in.WriteString("a,b\n")
	for i := range 250 {
		in.WriteString("1,2\n")
		if i%2 == 0 {
			in.WriteString("bad\n")
		}
	}
	batches, n, err := parseAll(t, []byte(in.String()), ParseOptions{MaxBatchRows: 7})
	require.NoError(t, err)
	require.EqualValues(t, 250, n)
	listed, count := skips(batches)
	require.Equal(t, 125, count)
	require.Len(t, listed, maxListedSkips)
	require.Equal(t, int64(3), listed[0].Line)
}
