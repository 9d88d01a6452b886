package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/readertest"
)

// A dataset whose sources disagree on a column is one table for DuckDB and
// polars:
// every chunk file types every column the same way, and a glob read returns
// every value unchanged, whichever source committed first and whichever
// file the reader takes its schema from.
func TestDatasetIsOneTableForDuckDB(t *testing.T) {
	files := map[string]string{
		"codes.csv":   "zip,n\n00501,1\n02134,2\n",     // leading zeros, ints
		"numbers.csv": "zip,n\n90210,3\n10001,4.5\n",   // plain numbers, a float
		"later.csv":   "zip,n,city\n60601,5,Chicago\n", // a column that appears later
	}
	want := [][]any{{"00501", 1.0, nil}, {"02134", 2.0, nil}, {"10001", 4.5, nil}, {"60601", 5.0, "Chicago"}, {"90210", 3.0, nil}}
	for _, order := range [][]string{
		{"codes.csv", "numbers.csv", "later.csv"},
		{"numbers.csv", "codes.csv", "later.csv"},
		{"later.csv", "numbers.csv", "codes.csv"},
	} {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, files)
			out := filepath.Join(dir, "out")
			// One run per file: each commits its own chunk, in this order.
			var said strings.Builder
			for _, name := range order {
				writeFiles(t, dir, map[string]string{"sources.txt": name + "\n"})
				stdout, code := trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--dataset", "zips", "-q")
				require.Equal(t, 0, code, stdout)
				said.WriteString(stdout)
			}
			// Each order widens some column, and the run says so.
			require.Contains(t, said.String(), "widened (values that did not fit; earlier chunks written again in the new types):\n  zips: ")
			m, err := dataset.ReadManifest(out, "zips")
			require.NoError(t, err)
			require.Len(t, m.Chunks, 3)
			require.NotEmpty(t, m.SchemaVersions)
			for _, ch := range m.Chunks {
				require.Zero(t, ch.Parts[0].Nulled, "chunk %d lost no value", ch.Seq)
			}

			var paths []string
			for _, ch := range m.Chunks {
				paths = append(paths, filepath.Join(out, "zips", ch.File))
			}
			// Every file has the same physical and logical type per column.
			types := map[string]readertest.Column{}
			for _, p := range paths {
				for _, c := range readertest.ParquetColumnTypes(t, p) {
					if have, ok := types[c.Name]; ok {
						require.Equal(t, have, c, p)
					}
					types[c.Name] = c
				}
			}
			globbed, err := filepath.Glob(filepath.Join(out, "zips", "*.parquet"))
			require.NoError(t, err)
			require.ElementsMatch(t, paths, globbed, "the folder holds the listed chunks only")

			for _, files := range [][]string{paths, {paths[2], paths[1], paths[0]}} {
				quoted := make([]string, len(files))
				for i, p := range files {
					quoted[i] = readertest.Quote(p)
				}
				res := readertest.DuckDB(t, "SELECT zip, n, city FROM read_parquet(["+strings.Join(quoted, ", ")+"], union_by_name = true) ORDER BY zip")
				require.Equal(t, []readertest.Column{{Name: "zip", Type: "VARCHAR"}, {Name: "n", Type: "DOUBLE"}, {Name: "city", Type: "VARCHAR"}}, res.Columns)
				require.Equal(t, want, res.Rows)
			}
			// polars concatenates the chunk files, in either order, without an
			// error and with every value as it was.
			for _, files := range [][]string{paths, {paths[2], paths[1], paths[0]}} {
				res := readertest.Polars(t, files...)
				require.Equal(t, []readertest.Column{{Name: "zip", Type: "String"}, {Name: "n", Type: "Float64"}, {Name: "city", Type: "String"}}, res.Columns)
				rows := slices.Clone(res.Rows)
				slices.SortFunc(rows, func(a, b []any) int { return strings.Compare(a[0].(string), b[0].(string)) })
				require.Equal(t, want, rows)
			}
			// A plain glob, the way most readers start, whichever file comes first.
			res := readertest.DuckDB(t, "SELECT zip, n FROM "+readertest.Quote(filepath.Join(out, "zips", "*.parquet"))+" ORDER BY zip")
			require.Equal(t, []readertest.Column{{Name: "zip", Type: "VARCHAR"}, {Name: "n", Type: "DOUBLE"}}, res.Columns)
			var zn [][]any
			for _, r := range want {
				zn = append(zn, r[:2])
			}
			require.Equal(t, zn, res.Rows)
		})
	}
}
