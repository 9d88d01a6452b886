package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/readertest"
)

// Real public files that neither trainfeed nor its tests wrote (the npm
// package vega-datasets) go through run into datasets that DuckDB reads
// with the same rows, columns and values as it reads the files themselves;
// a Parquet file's rows are its footer's; a PNG and an Arrow file fail
// with their reason and write nothing.
func TestRealFilesAsDuckDBReadsThem(t *testing.T) {
	data := readertest.Corpus(t)
	files := map[string]string{ // file: how DuckDB reads it
		"airports.csv":        "read_csv(%s)",
		"zipcodes.csv":        "read_csv(%s)",
		"seattle-weather.csv": "read_csv(%s)",
		"unemployment.tsv":    "read_csv(%s, delim = '\t')",
		"cars.json":           "read_json(%s)",
		"penguins.json":       "read_json(%s)",
		"flights-3m.parquet":  "read_parquet(%s)",
	}
	refused := map[string]string{
		"7zip.png":           "the body is a PNG image",
		"flights-200k.arrow": "the body is an Arrow IPC file",
	}
	datasetOf := func(file string) string { return strings.NewReplacer(".", "_").Replace(file) }
	var lines strings.Builder
	for file := range files {
		fmt.Fprintf(&lines, `{"url": %q, "dataset": %q}`+"\n", file, datasetOf(file))
	}
	for file := range refused {
		fmt.Fprintf(&lines, `{"url": %q, "dataset": %q}`+"\n", file, datasetOf(file))
	}
	dir := t.TempDir()
	sources := filepath.Join(dir, "sources.txt")
	require.NoError(t, os.WriteFile(sources, []byte(lines.String()), 0o644))
	out := filepath.Join(dir, "out")
	stdout, code := trainfeed(t, data, "run", "--sources", sources, "--out", out, "-q")
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stdout, fmt.Sprintf("sources: %d ok, %d failed", len(files), len(refused)))
	require.NotContains(t, stdout, "lost on the way", "no row skipped, no value nulled")
	for file, reason := range refused {
		require.Contains(t, stdout, reason, file)
		require.NoDirExists(t, filepath.Join(out, datasetOf(file)))
	}

	for file, read := range files {
		t.Run(file, func(t *testing.T) {
			src := fmt.Sprintf(read, readertest.Quote(filepath.Join(data, file)))
			ds := "read_parquet(" + readertest.Quote(filepath.Join(out, datasetOf(file), "*.parquet")) + ", union_by_name = true)"
			cols := readertest.DuckDB(t, fmt.Sprintf(`SELECT s.column_name, s.column_type, d.column_name, d.column_type
				FROM (SELECT *, row_number() OVER () AS i FROM (DESCRIBE SELECT * FROM %s)) s
				FULL JOIN (SELECT *, row_number() OVER () AS i FROM (DESCRIBE SELECT * FROM %s)) d USING (i) ORDER BY i`, src, ds)).Rows
			// Every row holds the same values, each column compared in the
			// type both readers can agree on.
			var casts []string
			for _, c := range cols {
				require.Equal(t, c[0], c[2], "columns in order: %v", cols)
				as := comparable(c[1].(string), c[3].(string))
				require.False(t, as == "VARCHAR" && c[1] != c[3], "column %s: DuckDB reads %s, the dataset holds %s", c[0], c[1], c[3])
				casts = append(casts, fmt.Sprintf("CAST(%q AS %s)", c[0], as))
			}
			sel := strings.Join(casts, ", ")
			res := readertest.DuckDB(t, fmt.Sprintf(`SELECT (SELECT count(*) FROM %[2]s), (SELECT count(*) FROM %[3]s),
				(SELECT count(*) FROM ((SELECT %[1]s FROM %[2]s EXCEPT ALL SELECT %[1]s FROM %[3]s)
					UNION ALL (SELECT %[1]s FROM %[3]s EXCEPT ALL SELECT %[1]s FROM %[2]s)))`, sel, src, ds)).Rows[0]
			m, err := dataset.ReadManifest(out, datasetOf(file))
			require.NoError(t, err)
			require.Equal(t, res[0], res[1], "rows")
			require.Equal(t, res[0], fmt.Sprint(m.Records), "rows in the manifest")
			require.Equal(t, "0", res[2], "rows that differ")
		})
	}
}

// comparable returns the type two readers' columns are compared in: the
// instant for dates and times, a double for numbers, a bool for bools, text
// otherwise (two columns of which one is text must both be).
func comparable(a, b string) string {
	temporal := func(t string) bool { return strings.HasPrefix(t, "DATE") || strings.HasPrefix(t, "TIMESTAMP") }
	numeric := func(t string) bool {
		switch t {
		case "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "UBIGINT", "UINTEGER", "HUGEINT":
			return true
		}
		return strings.HasPrefix(t, "DECIMAL")
	}
	switch {
	case temporal(a) || temporal(b):
		return "TIMESTAMP"
	case numeric(a) && numeric(b):
		return "DOUBLE"
	case a == "BOOLEAN" && b == "BOOLEAN":
		return "BOOLEAN"
	}
	return "VARCHAR"
}
