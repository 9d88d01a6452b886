package chunk

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/batchtest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantExt string
		wantErr bool
	}{
		{in: "jsonl", want: JSONL, wantExt: ".jsonl"},
		{in: "parquet", want: Parquet, wantExt: ".parquet"},
		{in: "csv", wantErr: true},
		{in: "JSONL", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if tt.wantErr {
				require.ErrorContains(t, err, fmt.Sprintf("%q", tt.in))
				require.Empty(t, got.Ext())
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantExt, got.Ext())
		})
	}
}

// fields builds a schema from name, type pairs.
var fields = batchtest.Fields

func TestWriteErrors(t *testing.T) {
	ints := func(name string, v ...int64) wire.Column {
		return wire.Column{Name: name, Type: wire.TypeInt, Ints: v}
	}
	one := func(cols ...wire.Column) []*wire.RecordBatch {
		return []*wire.RecordBatch{{SourceID: "src", Rows: 1, Columns: cols}}
	}
	tests := []struct {
		name    string
		format  Format
		schema  []wire.Field
		batches []*wire.RecordBatch
		wantErr string
	}{
		{name: "unknown format", format: "csv", schema: fields("a", "int"), batches: one(ints("a", 1)),
			wantErr: `unknown format "csv"`},
		{name: "column not in schema", schema: fields("a", "int"), batches: one(ints("a", 1), ints("b", 2)),
			wantErr: `batch 0 (src/0): column "b": not in schema`},
		{name: "narrowing", schema: fields("a", "int"),
			batches: one(wire.Column{Name: "a", Type: wire.TypeFloat, Floats: []float64{1}}),
			wantErr: `column "a": type float does not convert to schema type int`},
		{name: "bool into float", schema: fields("a", "float"),
			batches: one(wire.Column{Name: "a", Type: wire.TypeBool, Bools: []bool{true}}),
			wantErr: `type bool does not convert to schema type float`},
		{name: "values short of rows", schema: fields("a", "int"),
			batches: []*wire.RecordBatch{{Rows: 2, Columns: []wire.Column{ints("a", 1)}}},
			wantErr: `column "a": 1 values for 2 rows`},
		{name: "column twice", schema: fields("a", "int"), batches: one(ints("a", 1), ints("a", 2)),
			wantErr: `column "a": appears twice`},
		{name: "unknown column type", schema: fields("a", "string"),
			batches: one(wire.Column{Name: "a", Type: "date", Strings: []string{"x"}}),
			wantErr: `column "a": unknown type "date"`},
		{name: "schema field twice", schema: fields("a", "int", "a", "int"), batches: one(ints("a", 1)),
			wantErr: `schema field "a": listed twice`},
		{name: "unknown schema type", schema: fields("a", "decimal"), batches: one(),
			wantErr: `schema field "a": unknown type "decimal"`},
		{name: "nil batch", schema: fields("a", "int"), batches: []*wire.RecordBatch{nil},
			wantErr: `batch 0: nil`},
		{name: "second batch checked before writing", schema: fields("a", "int"),
			batches: append(one(ints("a", 1)), &wire.RecordBatch{SourceID: "x", Part: 3, Rows: 1, Columns: []wire.Column{ints("b", 1)}}),
			wantErr: `batch 1 (x/3): column "b": not in schema`},
		{name: "parquet without columns", format: Parquet, batches: []*wire.RecordBatch{{Rows: 1}},
			wantErr: `parquet schema: no fields`},
		{name: "parquet field without name", format: Parquet, schema: fields("", "int"), batches: one(ints("", 1)),
			wantErr: `parquet schema: field without a name`},
	}
	for _, tt := range tests {
		formats := []Format{JSONL, Parquet}
		if tt.format != "" {
			formats = []Format{tt.format}
		}
		for _, f := range formats {
			t.Run(tt.name+"/"+string(f), func(t *testing.T) {
				var buf bytes.Buffer
				n, err := Write(&buf, f, tt.schema, tt.batches)
				require.ErrorContains(t, err, tt.wantErr)
				require.Zero(t, n)
				require.Zero(t, buf.Len(), "wrote before failing")
			})
		}
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriteOutputError(t *testing.T) {
	batches := benchBatches(10_000)
	schema := SchemaOf(batches[0])
	for _, f := range []Format{JSONL, Parquet} {
		t.Run(string(f), func(t *testing.T) {
			_, err := Write(failWriter{}, f, schema, batches)
			require.ErrorIs(t, err, io.ErrClosedPipe)
		})
	}
}

// benchBatches returns one batch of n rows and five columns.
func benchBatches(n int) []*wire.RecordBatch {
	b := &wire.RecordBatch{SourceID: "bench", Rows: n, Columns: []wire.Column{
		{Name: "id", Type: wire.TypeInt, Ints: make([]int64, n)},
		{Name: "value", Type: wire.TypeFloat, Floats: make([]float64, n)},
		{Name: "flag", Type: wire.TypeBool, Bools: make([]bool, n)},
		{Name: "text", Type: wire.TypeString, Strings: make([]string, n)},
		{Name: "category", Type: wire.TypeString, Strings: make([]string, n), Nulls: make([]bool, n)},
	}}
	cats := []string{"news", "sports", "weather", "science", "arts"}
	for i := range n {
		b.Columns[0].Ints[i] = int64(i) * 7919
		b.Columns[1].Floats[i] = float64(i) * 1.0001
		b.Columns[2].Bools[i] = i%3 == 0
		b.Columns[3].Strings[i] = fmt.Sprintf("record %d says \"hello\" to the world", i)
		b.Columns[4].Strings[i] = cats[i%len(cats)]
		b.Columns[4].Nulls[i] = i%10 == 0
	}
	return []*wire.RecordBatch{b}
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

func benchmarkWrite(b *testing.B, f Format) {
	const rows = 10_000
	batches := benchBatches(rows)
	schema := SchemaOf(batches[0])
	var out countingWriter
	b.ReportAllocs()
	for b.Loop() {
		out.n = 0
		if _, err := Write(&out, f, schema, batches); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/record")
	b.ReportMetric(float64(out.n)/rows, "B/record")
}

func BenchmarkWriteParquet(b *testing.B) { benchmarkWrite(b, Parquet) }

func BenchmarkWriteJSONL(b *testing.B) { benchmarkWrite(b, JSONL) }

func TestWriteNoRecords(t *testing.T) {
	schema := fields("id", "int", "text", "string")
	batches := []*wire.RecordBatch{{SourceID: "a", Last: true}, {SourceID: "b", Rows: 0, Columns: []wire.Column{
		{Name: "id", Type: wire.TypeInt},
	}}}
	t.Run("jsonl", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := Write(&buf, JSONL, schema, batches)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Zero(t, buf.Len())
	})
	t.Run("parquet", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := Write(&buf, Parquet, schema, batches)
		require.NoError(t, err)
		require.Zero(t, n)
		f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		require.NoError(t, err)
		require.Zero(t, f.NumRows())
		require.Len(t, f.Schema().Columns(), 2)
	})
}
