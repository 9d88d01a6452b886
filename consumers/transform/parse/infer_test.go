package parse

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestParseHeaderNamesAndValuesAlwaysValidUTF8(t *testing.T) {
	batches, _, err := parseAll(t, []byte("\xff\xfe\xfd\n\x80\x81\n"), ParseOptions{})
	require.NoError(t, err)
	for _, b := range batches {
		requireWellFormed(t, b)
		for _, c := range b.Columns {
			require.True(t, utf8.ValidString(c.Name))
		}
	}
}

// A column is never narrower in a later batch of a source than in an
// earlier one, so the source's batches agree whichever commits first:
// codes whose first rows have leading zeros stay text, floats stay floats.
func TestParseTypesNeverNarrowWithinASource(t *testing.T) {
	var in strings.Builder
	in.WriteString("zip,x\n00501,1.5\n02134,2.5\n")
	for i := range 10 {
		fmt.Fprintf(&in, "%d,%d\n", 10001+i, i)
	}
	batches, _, err := parseAll(t, []byte(in.String()), ParseOptions{Format: "csv", MaxBatchRows: 2})
	require.NoError(t, err)
	require.Len(t, batches, 6)
	for _, b := range batches {
		require.Equal(t, wire.TypeString, b.Columns[0].Type)
		require.Equal(t, wire.TypeFloat, b.Columns[1].Type)
	}
	require.Equal(t, "10001", batches[1].Columns[0].Strings[0])
}
