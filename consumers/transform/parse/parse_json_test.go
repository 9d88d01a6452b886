package parse

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/batchtest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// values returns column name of every batch, in order.
func values(batches []*Batch, name string) []any {
	var out []any
	for _, b := range batches {
		out = batchtest.Values(out, b.Columns, b.Rows, name)
	}
	return out
}

func TestParseJSONArray(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []col
		skips []wire.SkippedRow
	}{
		{
			name:  "objects",
			input: `[{"a":1,"b":"x"},{"a":2.5,"c":[1, {"d":null}]}]`,
			want: []col{
				{"a", wire.TypeFloat, []any{1.0, 2.5}},
				{"b", wire.TypeString, []any{"x", nil}},
				{"c", wire.TypeString, []any{nil, `[1,{"d":null}]`}},
			},
		},
		{
			name:  "pretty printed over lines",
			input: "\uFEFF[\n  {\n    \"a\": \"],[{\\\"\",\n    \"b\": true\n  },\n  {\"a\": \"y\", \"b\": false}\n]\n",
			want: []col{
				{"a", wire.TypeString, []any{`],[{"`, "y"}},
				{"b", wire.TypeBool, []any{true, false}},
			},
		},
		{
			name:  "bad elements skipped with their lines",
			input: "[\n{\"a\":1},\n{\"a\":},\n2,\n\"s\",\n{\"a\":3} x,\n[1],\n},\n{\"a\":4}\n]",
			want:  []col{{"a", wire.TypeInt, []any{int64(1), int64(4)}}},
			skips: []wire.SkippedRow{
				{Line: 3, Reason: "invalid json at byte 6: unexpected '}', want value"},
				{Line: 4, Reason: "not a json object"},
				{Line: 5, Reason: "not a json object"},
				{Line: 6, Reason: "invalid json at byte 9: unexpected 'x', want end of line after object"},
				{Line: 7, Reason: "not a json object"},
				{Line: 8, Reason: "not a json object"},
			},
		},
		{
			name:  "trailing comma",
			input: `[{"a":1},]`,
			want:  []col{{"a", wire.TypeInt, []any{int64(1)}}},
			skips: []wire.SkippedRow{{Line: 1, Reason: "invalid json: empty array element"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"", "json"} {
				batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: format})
				require.NoError(t, err)
				require.Len(t, batches, 1)
				requireWellFormed(t, batches[0])
				require.EqualValues(t, len(tt.want[0].Values), n)
				require.Equal(t, tt.want, cols(batches[0]))
				listed, count := skips(batches)
				require.Equal(t, tt.skips, listed)
				require.Equal(t, len(tt.skips), count)
			}
		})
	}
}

func TestParseJSONArrayEmpty(t *testing.T) {
	for _, in := range []string{"[]", " [ \n ] \n", "[\n]"} {
		batches, n, err := parseAll(t, []byte(in), ParseOptions{Format: "json"})
		require.NoError(t, err, in)
		require.Zero(t, n)
		require.Len(t, batches, 1)
		require.True(t, batches[0].Last)
		require.Zero(t, batches[0].SkippedRows)
	}
}

func TestParseJSONArrayFatal(t *testing.T) {
	tests := []struct {
		name, input, msg string
		line             int64
	}{
		{name: "unterminated", input: "[{\"a\":1},\n{\"a\":2", msg: "unexpected end of input in array element", line: 2},
		{name: "unterminated string", input: "[{\"a\":\"x}]\n", msg: "unexpected end of input", line: 1},
		{name: "no closing bracket", input: "[{\"a\":1}\n", msg: "unexpected end of input", line: 1},
		{name: "data after the array", input: "[{\"a\":1}]\n[{\"a\":2}]", msg: "data after the array", line: 2},
		{name: "json format but not an array or object", input: "\"x\"", msg: "not a json object"},
		{name: "too deep", input: "[" + strings.Repeat("[", maxDepth+1), msg: "nested too deep", line: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: "json", Strict: true})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.ErrorContains(t, err, tt.msg)
			if tt.line > 0 {
				require.Equal(t, tt.line, pe.Line)
			}
		})
	}
}

func TestParseJSONArrayBatches(t *testing.T) {
	var in strings.Builder
	in.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			in.WriteString(",\n")
		}
		in.WriteString(`{"id":` + strings.Repeat("1", i%7+1) + `,"v":"abcdefghij"}`)
	}
	in.WriteString("]")
	batches, n, err := parseAll(t, []byte(in.String()), ParseOptions{MaxBatchRows: 100})
	require.NoError(t, err)
	require.EqualValues(t, 1000, n)
	require.Len(t, batches, 10)
	for i, b := range batches {
		require.Equal(t, 100, b.Rows)
		require.Equal(t, int64(i*100+1), b.FirstLine)
		require.Equal(t, i == 9, b.Last)
	}
}
