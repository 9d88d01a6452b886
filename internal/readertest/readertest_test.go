package readertest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/readertest"
)

type row struct {
	ID    int64      `parquet:"id"`
	Name  string     `parquet:"name"`
	Score float64    `parquet:"score"`
	Count int32      `parquet:"count"`
	OK    bool       `parquet:"ok"`
	Note  *string    `parquet:"note,optional"`
	TS    *time.Time `parquet:"ts,optional,timestamp(microsecond)"`
}

func TestParquet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "it's.parquet") // a quote, to test Quote
	note := "hello"
	at := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)
	rows := []row{
		{ID: 9007199254740993, Name: "big", Score: -0.5, Count: 3, OK: false},
		{ID: 1, Name: "one", Score: 1.25, Count: -7, OK: true, Note: &note, TS: &at},
	}
	require.NoError(t, parquet.WriteFile(path, rows))

	res := readertest.DuckDB(t, "SELECT * FROM read_parquet("+readertest.Quote(path)+") ORDER BY id")
	require.Equal(t, []readertest.Column{
		{Name: "id", Type: "BIGINT"},
		{Name: "name", Type: "VARCHAR"},
		{Name: "score", Type: "DOUBLE"},
		{Name: "count", Type: "INTEGER"},
		{Name: "ok", Type: "BOOLEAN"},
		{Name: "note", Type: "VARCHAR"},
		{Name: "ts", Type: "TIMESTAMP WITH TIME ZONE"},
	}, res.Columns)
	require.Equal(t, [][]any{
		{"1", "one", 1.25, float64(-7), true, "hello", "2024-01-02T03:04:05.123456Z"},
		// 2^53+1: exact only because BIGINT comes as a string.
		{"9007199254740993", "big", -0.5, float64(3), false, nil, nil},
	}, res.Rows)

	got, err := time.Parse(time.RFC3339Nano, res.Rows[0][6].(string))
	require.NoError(t, err)
	require.True(t, got.Equal(at))

	require.Equal(t, []readertest.Column{
		{Name: "id", Type: "INT64 converted=INT_64 logical=IntType(bitWidth=64, isSigned=1)"},
		{Name: "name", Type: "BYTE_ARRAY converted=UTF8 logical=StringType()"},
		{Name: "score", Type: "DOUBLE"},
		{Name: "count", Type: "INT32 converted=INT_32 logical=IntType(bitWidth=32, isSigned=1)"},
		{Name: "ok", Type: "BOOLEAN"},
		{Name: "note", Type: "BYTE_ARRAY converted=UTF8 logical=StringType()"},
		{Name: "ts", Type: "INT64 converted=TIMESTAMP_MICROS logical=TimestampType(isAdjustedToUTC=1, unit=TimeUnit(MILLIS=<null>, MICROS=MicroSeconds(), NANOS=<null>))"},
	}, readertest.ParquetColumnTypes(t, path))
}

func TestParquetNestedColumnTypes(t *testing.T) {
	type inner struct {
		K string `parquet:"k"`
		V int32  `parquet:"v"`
	}
	type nested struct {
		ID   int64   `parquet:"id"`
		Meta inner   `parquet:"meta"`
		Tags []int64 `parquet:"tags,list"`
	}
	path := filepath.Join(t.TempDir(), "nested.parquet")
	require.NoError(t, parquet.WriteFile(path, []nested{{ID: 1, Meta: inner{K: "a", V: 2}, Tags: []int64{5, 6}}}))

	cols := readertest.ParquetColumnTypes(t, path)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	require.Equal(t, []string{"id", "meta.k", "meta.v", "tags.list.element"}, names)

	res := readertest.DuckDB(t, "SELECT meta, tags FROM read_parquet("+readertest.Quote(path)+")")
	require.Equal(t, [][]any{{map[string]any{"k": "a", "v": float64(2)}, []any{"5", "6"}}}, res.Rows)
}

func TestJSONL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	data := `{"id":2,"name":"two","score":0.5,"tags":["x","y"],"ts":"2024-01-02T03:04:05.5Z"}
{"id":1,"name":null,"score":3,"tags":[],"ts":null}
`
	require.NoError(t, os.WriteFile(path, []byte(data), 0o644))

	res := readertest.DuckDB(t, "SELECT id, name, score, tags, ts FROM read_json_auto("+readertest.Quote(path)+") ORDER BY id")
	require.Equal(t, []readertest.Column{
		{Name: "id", Type: "BIGINT"},
		{Name: "name", Type: "VARCHAR"},
		{Name: "score", Type: "DOUBLE"},
		{Name: "tags", Type: "VARCHAR[]"},
		// read_json_auto takes "...Z" text for a TIMESTAMP, in UTC.
		{Name: "ts", Type: "TIMESTAMP"},
	}, res.Columns)
	require.Equal(t, [][]any{
		{"1", nil, float64(3), []any{}, nil},
		{"2", "two", 0.5, []any{"x", "y"}, "2024-01-02T03:04:05.500000Z"},
	}, res.Rows)

	count := readertest.DuckDB(t, "SELECT count(*) AS n FROM read_json_auto("+readertest.Quote(path)+")")
	require.Equal(t, [][]any{{"2"}}, count.Rows)
}

func TestValues(t *testing.T) {
	res := readertest.DuckDB(t, `SELECT 170141183460469231731687303715884105727::HUGEINT AS h,
		12.34::DECIMAL(10,2) AS d, DATE '2024-02-29' AS day, 'a\x00b'::BLOB AS b,
		TIMESTAMP '1969-12-31 23:59:59.25' AS before_epoch, 'infinity'::TIMESTAMP AS inf,
		NULL AS nothing`)
	require.Equal(t, []any{
		"170141183460469231731687303715884105727", "12.34", "2024-02-29", "YQBi",
		"1969-12-31T23:59:59.250000Z", "infinity", nil,
	}, res.Rows[0])
	require.Equal(t, "HUGEINT", res.Columns[0].Type)
	require.Equal(t, "DECIMAL(10,2)", res.Columns[1].Type)
	require.Equal(t, "INTEGER", res.Columns[6].Type) // DuckDB types a bare NULL so
}

// fatalRecorder is a testing.TB whose Fatal and Fatalf record the message
// and end the goroutine, as a real test's do.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestSQLErrorFails(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		readertest.DuckDB(rec, "SELECT * FROM no_such_table")
		t.Error("DuckDB returned on a bad query")
	}()
	<-done
	require.Contains(t, rec.msg, "no_such_table")
	require.Contains(t, rec.msg, "Catalog Error")
}

// polars concatenates files by column name, nulls where a file lacks a
// column, and refuses files that type a column differently.
func TestPolars(t *testing.T) {
	type a struct {
		ID   int64  `parquet:"id"`
		Name string `parquet:"name"`
	}
	type b struct {
		ID   int64   `parquet:"id"`
		Name string  `parquet:"name"`
		Note *string `parquet:"note,optional"`
	}
	dir := t.TempDir()
	note := "x"
	first, second := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	require.NoError(t, parquet.WriteFile(first, []a{{ID: 9007199254740993, Name: "big"}}))
	require.NoError(t, parquet.WriteFile(second, []b{{ID: 2, Name: "two", Note: &note}}))
	res := readertest.Polars(t, first, second)
	require.Equal(t, []readertest.Column{{Name: "id", Type: "Int64"}, {Name: "name", Type: "String"}, {Name: "note", Type: "String"}}, res.Columns)
	require.Equal(t, [][]any{{"9007199254740993", "big", nil}, {"2", "two", "x"}}, res.Rows)
}
