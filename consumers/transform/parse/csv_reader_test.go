package parse

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// CSV as real files write it, read as DuckDB and Python's csv module read
// them: a quote inside an unquoted field is data, a line break inside a
// quoted field is kept as written, record line breaks are not data.
func TestParseCSVAsRealFilesWriteIt(t *testing.T) {
	for _, tt := range []struct {
		name, input string
		want        []any
	}{
		{"inches", "v\r\n12\" pipe\r\n3/4\" valve\r\n", []any{`12" pipe`, `3/4" valve`}},
		{"coordinates", "v,n\n37°36'37.8\"N,1\n", []any{`37°36'37.8"N`}},
		{"quote at the end", "v\nsay \"hi\"\n", []any{`say "hi"`}},
		{"crlf inside quotes", "v\r\n\"a\r\nb\"\r\n\"c\nd\"\n", []any{"a\r\nb", "c\nd"}},
		{"doubled quotes", "v\n\"x \"\"y\"\" z\"\n", []any{`x "y" z`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: "csv"})
			require.NoError(t, err)
			require.Equal(t, tt.want, values(batches, "v"))
			for _, b := range batches {
				require.Empty(t, b.Skipped)
			}
		})
	}
}
