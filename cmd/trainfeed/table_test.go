package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/readertest"
)

// A dataset whose sources disagree on a column is one table for DuckDB:
// every chunk file types every column the same way, and a glob read returns
// every value unchanged, whichever file it reads first.
func TestDatasetIsOneTableForDuckDB(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		// Codes with leading zeros first, plain numbers later.
		"a.csv": "zip,n\n00501,1\n02134,2\n",
		"b.csv": "zip,n\n90210,3\n10001,4.5\n",
		// A column that appears later.
		"c.csv": "zip,n,city\n60601,5,Chicago\n",
	}
	writeFiles(t, dir, files)
	out := filepath.Join(dir, "out")
	for _, name := range []string{"a.csv", "b.csv", "c.csv"} {
		writeFiles(t, dir, map[string]string{"sources.txt": name + "\n"})
		stdout, code := trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--dataset", "zips", "-q")
		require.Equal(t, 0, code, stdout)
	}
	m, err := combine.ReadManifest(out, "zips")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 3)
	require.Len(t, m.SchemaVersions, 2)
	require.Equal(t, 1, m.Chunks[1].Parts[0].Nulled, "4.5 does not fit the int column n")

	var paths []string
	for _, ch := range m.Chunks {
		paths = append(paths, filepath.Join(out, "zips", ch.File))
	}
	first := readertest.ParquetColumnTypes(t, paths[0])
	for _, p := range paths[1:] {
		require.Equal(t, first, readertest.ParquetColumnTypes(t, p)[:len(first)], p)
	}

	want := [][]any{{"00501", "1"}, {"02134", "2"}, {"10001", nil}, {"60601", "5"}, {"90210", "3"}}
	for _, order := range [][]string{paths, {paths[2], paths[1], paths[0]}} {
		quoted := make([]string, len(order))
		for i, p := range order {
			quoted[i] = readertest.Quote(p)
		}
		res := readertest.DuckDB(t, "SELECT zip, n FROM read_parquet(["+strings.Join(quoted, ", ")+"], union_by_name = true) ORDER BY zip")
		require.Equal(t, []readertest.Column{{Name: "zip", Type: "VARCHAR"}, {Name: "n", Type: "BIGINT"}}, res.Columns)
		require.Equal(t, want, res.Rows)
	}
	// A plain glob, the way most readers start.
	res := readertest.DuckDB(t, "SELECT zip FROM "+readertest.Quote(filepath.Join(out, "zips", "*.parquet"))+" ORDER BY zip")
	require.Equal(t, [][]any{{"00501"}, {"02134"}, {"10001"}, {"60601"}, {"90210"}}, res.Rows)
}
