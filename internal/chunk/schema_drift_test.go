package chunk

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestMergeSchemaReport(t *testing.T) {
	tests := []struct {
		name string
		a, b []wire.Field
		want []wire.Field
		conf []Conflict
	}{
		{name: "new column added", a: fields("x", "int"), b: fields("y", "timestamp"), want: fields("x", "int", "y", "timestamp")},
		{name: "int widens to float, no conflict", a: fields("x", "int"), b: fields("x", "float"), want: fields("x", "float")},
		{name: "timestamp kept", a: fields("t", "timestamp"), b: fields("t", "timestamp"), want: fields("t", "timestamp")},
		{name: "timestamp and string conflict", a: fields("t", "timestamp"), b: fields("t", "string"), want: fields("t", "string"),
			conf: []Conflict{{Name: "t", Have: "timestamp", Got: "string"}}},
		{name: "timestamp and int conflict", a: fields("t", "int"), b: fields("t", "timestamp"), want: fields("t", "string"),
			conf: []Conflict{{Name: "t", Have: "int", Got: "timestamp"}}},
		{name: "bool and int conflict", a: fields("x", "bool", "y", "int"), b: fields("y", "float", "x", "int"), want: fields("x", "string", "y", "float"),
			conf: []Conflict{{Name: "x", Have: "bool", Got: "int"}}},
		{name: "string column meets int", a: fields("x", "string"), b: fields("x", "int"), want: fields("x", "string"),
			conf: []Conflict{{Name: "x", Have: "string", Got: "int"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conf := MergeSchemaReport(tt.a, tt.b)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.conf, conf)
			require.Equal(t, got, MergeSchema(tt.a, tt.b))
		})
	}
}

func TestSchemaOfLeavesOutColumnsWithoutValues(t *testing.T) {
	b := &wire.RecordBatch{Rows: 2, Columns: []wire.Column{
		{Name: "empty", Type: wire.TypeString, Strings: make([]string, 2), Nulls: []bool{true, true}},
		{Name: "i", Type: wire.TypeInt, Ints: []int64{1, 0}, Nulls: []bool{false, true}},
	}}
	require.Equal(t, fields("i", "int"), SchemaOf(b))
	// A column no batch has a value of is in no schema, and a chunk writes
	// the batch without it.
	for _, f := range []Format{JSONL, Parquet} {
		var buf bytes.Buffer
		n, err := Write(&buf, f, SchemaOf(b), []*wire.RecordBatch{b})
		require.NoError(t, err, f)
		require.EqualValues(t, 2, n)
	}
	// An all-null column of one type does not clash with values of another.
	ints := &wire.RecordBatch{Rows: 1, Columns: []wire.Column{{Name: "empty", Type: wire.TypeInt, Ints: []int64{5}}}}
	schema, conf := MergeSchemaReport(SchemaOf(b), SchemaOf(ints))
	require.Empty(t, conf)
	require.Equal(t, fields("i", "int", "empty", "int"), schema)
	var buf bytes.Buffer
	_, err := Write(&buf, JSONL, schema, []*wire.RecordBatch{b, ints})
	require.NoError(t, err)
	require.Equal(t, "{\"i\":1,\"empty\":null}\n{\"i\":null,\"empty\":null}\n{\"i\":null,\"empty\":5}\n", buf.String())
}

// timestampBatches holds a timestamp column "t" in the first batch and a
// string one in the second, which conflict.
func timestampBatches() []*wire.RecordBatch {
	t0 := time.Date(2024, 5, 1, 12, 30, 0, 250_000_000, time.UTC).UnixMicro()
	t1 := time.Date(1969, 12, 31, 23, 59, 59, 999_999_000, time.UTC).UnixMicro()
	return []*wire.RecordBatch{
		{SourceID: "a", Rows: 3, Columns: []wire.Column{
			{Name: "t", Type: wire.TypeTimestamp, Ints: []int64{t0, 0, t1}, Nulls: []bool{false, true, false}},
		}},
		{SourceID: "b", Rows: 1, Columns: []wire.Column{
			{Name: "t", Type: wire.TypeString, Strings: []string{"soon"}},
		}},
	}
}

func TestWriteTimestampJSONL(t *testing.T) {
	b := timestampBatches()
	var buf bytes.Buffer
	_, err := Write(&buf, JSONL, SchemaOf(b[0]), b[:1])
	require.NoError(t, err)
	require.Equal(t, `{"t":"2024-05-01T12:30:00.25Z"}`+"\n"+`{"t":null}`+"\n"+`{"t":"1969-12-31T23:59:59.999999Z"}`+"\n", buf.String())

	buf.Reset()
	schema := MergeSchema(SchemaOf(b[0]), SchemaOf(b[1]))
	require.Equal(t, fields("t", "string"), schema)
	_, err = Write(&buf, JSONL, schema, b)
	require.NoError(t, err)
	require.Equal(t, `{"t":"2024-05-01T12:30:00.25Z"}`+"\n"+`{"t":null}`+"\n"+`{"t":"1969-12-31T23:59:59.999999Z"}`+"\n"+`{"t":"soon"}`+"\n", buf.String())
}

func TestWriteTimestampParquet(t *testing.T) {
	b := timestampBatches()[:1]
	var buf bytes.Buffer
	n, err := Write(&buf, Parquet, SchemaOf(b[0]), b)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	leaf, ok := f.Schema().Lookup("t")
	require.True(t, ok)
	require.Equal(t, parquet.Int64, leaf.Node.Type().Kind())
	lt := leaf.Node.Type().LogicalType()
	require.NotNil(t, lt)
	require.Equal(t, &format.TimestampType{IsAdjustedToUTC: true, Unit: format.TimeUnit{Value: new(format.MicroSeconds)}}, lt.Value)

	rows := make([]parquet.Row, 3)
	rr := f.RowGroups()[0].Rows()
	defer rr.Close()
	got, err := rr.ReadRows(rows)
	if err != io.EOF {
		require.NoError(t, err)
	}
	require.Equal(t, 3, got)
	require.Equal(t, b[0].Columns[0].Ints[0], rows[0][0].Int64())
	require.True(t, rows[1][0].IsNull())
	require.Equal(t, b[0].Columns[0].Ints[2], rows[2][0].Int64())

	// The generic reader turns the column into time.Time values.
	type rec struct {
		T *time.Time `parquet:"t,optional,timestamp(microsecond)"`
	}
	recs, err := parquet.Read[rec](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.NotNil(t, recs[0].T)
	require.Equal(t, "2024-05-01T12:30:00.25Z", recs[0].T.UTC().Format(time.RFC3339Nano))
	require.Nil(t, recs[1].T)
}

func TestWriteTimestampAsString(t *testing.T) {
	b := timestampBatches()
	schema := MergeSchema(SchemaOf(b[0]), SchemaOf(b[1]))
	var buf bytes.Buffer
	_, err := Write(&buf, Parquet, schema, b)
	require.NoError(t, err)
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	rows := make([]parquet.Row, 4)
	rr := f.RowGroups()[0].Rows()
	defer rr.Close()
	n, err := rr.ReadRows(rows)
	if err != io.EOF {
		require.NoError(t, err)
	}
	require.Equal(t, 4, n)
	var got []string
	for _, r := range rows {
		got = append(got, string(r[0].ByteArray()))
	}
	require.Equal(t, "2024-05-01T12:30:00.25Z,,1969-12-31T23:59:59.999999Z,soon", strings.Join(got, ","))
}

func TestWriteTimestampIntoOtherTypes(t *testing.T) {
	b := timestampBatches()[:1]
	for _, to := range []string{"int", "float", "bool"} {
		_, err := Write(io.Discard, JSONL, fields("t", to), b)
		require.ErrorContains(t, err, "type timestamp does not convert to schema type "+to)
	}
}
