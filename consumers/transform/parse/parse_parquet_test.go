package parse

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/readertest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A Parquet file written by another tool (DuckDB) is read natively, row
// group by row group: every row its footer counts, each column typed,
// codes kept as text, nested values as JSON text, whatever the body's name.
func TestParseParquet(t *testing.T) {
	const rows = 2500
	path := filepath.Join(t.TempDir(), "data.bin")
	readertest.DuckDB(t, fmt.Sprintf(`COPY (SELECT i::BIGINT AS i, i / 4 AS d, lpad(i::VARCHAR, 5, '0') AS zip,
		TIMESTAMP '2024-01-01' + to_seconds(i) AS ts, DATE '2024-01-01' + i::INTEGER AS dt, [i, i + 1] AS l,
		i %% 2 = 0 AS even, CASE WHEN i %% 3 = 0 THEN NULL ELSE i::INTEGER END AS some, 'x' || i AS s
		FROM range(%d) t(i)) TO %s (FORMAT parquet, ROW_GROUP_SIZE 1000)`, rows, readertest.Quote(path)))
	res := readertest.DuckDB(t, "SELECT count(*) AS n, count(DISTINCT row_group_id) AS groups FROM parquet_metadata("+readertest.Quote(path)+")")
	require.NotEqual(t, "1", fmt.Sprint(res.Rows[0][1]), "more than one row group")

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	batches, n, err := parseAll(t, data, ParseOptions{MaxBatchRows: 700})
	require.NoError(t, err)
	require.EqualValues(t, rows, n)

	types := map[string]wire.Type{}
	var got []map[string]any
	for _, b := range batches {
		for r := range b.Rows {
			rec := map[string]any{}
			for i := range b.Columns {
				c := &b.Columns[i]
				if !allNullColumn(c, b.Rows) {
					types[c.Name] = c.Type
				}
				rec[c.Name] = c.Value(r)
			}
			got = append(got, rec)
		}
	}
	require.Len(t, got, rows)
	require.Equal(t, map[string]wire.Type{
		"i": wire.TypeInt, "d": wire.TypeFloat, "zip": wire.TypeString, "ts": wire.TypeTimestamp, "dt": wire.TypeTimestamp,
		"l": wire.TypeString, "even": wire.TypeBool, "some": wire.TypeInt, "s": wire.TypeString,
	}, types)
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, i := range []int{0, 1, 999, 1000, 1001, 2499} {
		var some any = int64(i)
		if i%3 == 0 {
			some = nil
		}
		require.Equal(t, map[string]any{
			"i": int64(i), "d": float64(i) / 4, "zip": fmt.Sprintf("%05d", i), "ts": start.Add(time.Duration(i) * time.Second),
			"dt": start.AddDate(0, 0, i), "l": fmt.Sprintf("[%d,%d]", i, i+1), "even": i%2 == 0, "some": some, "s": fmt.Sprintf("x%d", i),
		}, got[i], "row %d", i)
	}
}

func allNullColumn(c *wire.Column, rows int) bool {
	for r := range rows {
		if !c.IsNull(r) {
			return false
		}
	}
	return true
}
