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
