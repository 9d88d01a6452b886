package chunk

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// parquetBatches returns two batches of 1800 and 1200 rows. The second lacks
// "flag", has int "value" where the first has float, and int "mixed" where
// the first has bool.
func parquetBatches() []*wire.RecordBatch {
	const n1, n2 = 1800, 1200
	b1 := &wire.RecordBatch{SourceID: "a", Rows: n1, Columns: []wire.Column{
		{Name: "id", Type: wire.TypeInt, Ints: make([]int64, n1)},
		{Name: "value", Type: wire.TypeFloat, Floats: make([]float64, n1), Nulls: make([]bool, n1)},
		{Name: "flag", Type: wire.TypeBool, Bools: make([]bool, n1)},
		{Name: "text", Type: wire.TypeString, Strings: make([]string, n1), Nulls: make([]bool, n1)},
		{Name: "mixed", Type: wire.TypeBool, Bools: make([]bool, n1)},
	}}
	for i := range n1 {
		b1.Columns[0].Ints[i] = int64(i)
		b1.Columns[1].Floats[i] = float64(i) / 4
		b1.Columns[1].Nulls[i] = i%7 == 3
		b1.Columns[2].Bools[i] = i%3 == 0
		b1.Columns[3].Strings[i] = fmt.Sprintf("row %d ✓", i)
		b1.Columns[3].Nulls[i] = i%5 == 1
		b1.Columns[4].Bools[i] = i%2 == 0
	}
	b1.Columns[1].Floats[11] = math.NaN()
	b2 := &wire.RecordBatch{SourceID: "b", Rows: n2, Columns: []wire.Column{
		{Name: "text", Type: wire.TypeString, Strings: make([]string, n2)},
		{Name: "value", Type: wire.TypeInt, Ints: make([]int64, n2)},
		{Name: "id", Type: wire.TypeInt, Ints: make([]int64, n2), Nulls: make([]bool, n2)},
		{Name: "mixed", Type: wire.TypeInt, Ints: make([]int64, n2)},
	}}
	for i := range n2 {
		b2.Columns[0].Strings[i] = strings.Repeat("x", i%50)
		b2.Columns[1].Ints[i] = int64(-i)
		b2.Columns[2].Ints[i] = int64(n1 + i)
		b2.Columns[2].Nulls[i] = i == 0
		b2.Columns[3].Ints[i] = int64(i * 1000)
	}
	return []*wire.RecordBatch{b1, b2}
}

// recordValue returns record r of batches, column name, converted to the
// schema type as Write does: nil, int64, float64, bool or string.
func recordValue(schema []wire.Field, batches []*wire.RecordBatch, r int, name string) any {
	for _, b := range batches {
		if r >= b.Rows {
			r -= b.Rows
			continue
		}
		for ci := range b.Columns {
			c := &b.Columns[ci]
			if c.Name != name {
				continue
			}
			v := c.Value(r)
			i := slices.IndexFunc(schema, func(f wire.Field) bool { return f.Name == name })
			switch x := v.(type) {
			case nil:
				return nil
			case int64:
				if schema[i].Type == wire.TypeFloat {
					return float64(x)
				}
				if schema[i].Type == wire.TypeString {
					return fmt.Sprint(x)
				}
			case bool:
				if schema[i].Type == wire.TypeString {
					return fmt.Sprint(x)
				}
			}
			return v
		}
		return nil
	}
	panic("record out of range")
}

func TestWriteParquet(t *testing.T) {
	batches := parquetBatches()
	schema := MergeSchema(SchemaOf(batches[0]), SchemaOf(batches[1]))
	require.Equal(t, fields("id", "int", "value", "float", "flag", "bool", "text", "string", "mixed", "string"), schema)

	tests := []struct {
		name          string
		maxGroupBytes int64
		wantGroups    int
	}{
		{name: "one row group", maxGroupBytes: rowGroupBytes, wantGroups: 1},
		// Row groups close after each block of parquetBlockRows rows:
		// 1800 = 1024+776 and 1200 = 1024+176.
		{name: "row group per block", maxGroupBytes: 1, wantGroups: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			plans, err := planBatches(schema, batches)
			require.NoError(t, err)
			n, err := writeParquet(&buf, schema, batches, plans, tt.maxGroupBytes)
			require.NoError(t, err)
			require.EqualValues(t, 3000, n)
			checkParquet(t, buf.Bytes(), schema, batches, tt.wantGroups)
		})
	}
	t.Run("through Write", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := Write(&buf, Parquet, schema, batches)
		require.NoError(t, err)
		require.EqualValues(t, 3000, n)
		checkParquet(t, buf.Bytes(), schema, batches, 1)
	})
}

// checkParquet reads data back and checks it holds the records of batches
// under schema, in wantGroups row groups.
func checkParquet(t *testing.T, data []byte, schema []wire.Field, batches []*wire.RecordBatch, wantGroups int) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.EqualValues(t, 3000, f.NumRows())
	require.Len(t, f.RowGroups(), wantGroups)

	wantKinds := map[wire.Type]parquet.Kind{
		wire.TypeInt: parquet.Int64, wire.TypeFloat: parquet.Double,
		wire.TypeBool: parquet.Boolean, wire.TypeString: parquet.ByteArray,
	}
	cols := make([]int, len(schema))
	for i, field := range schema {
		leaf, ok := f.Schema().Lookup(field.Name)
		require.True(t, ok, field.Name)
		require.True(t, leaf.Node.Optional(), field.Name)
		require.Equal(t, 1, leaf.MaxDefinitionLevel, field.Name)
		require.Equal(t, wantKinds[field.Type], leaf.Node.Type().Kind(), field.Name)
		lt := leaf.Node.Type().LogicalType()
		switch field.Type {
		case wire.TypeString:
			require.NotNil(t, lt, field.Name)
			require.IsType(t, &format.StringType{}, lt.Value, field.Name)
		case wire.TypeInt:
			require.NotNil(t, lt, field.Name)
			require.Equal(t, &format.IntType{BitWidth: 64, IsSigned: true}, lt.Value, field.Name)
		}
		cols[i] = leaf.ColumnIndex
	}
	// Columns come in the fields' order (the test schema is not sorted).
	want := make([]int, len(schema))
	for i := range want {
		want[i] = i
	}
	require.Equal(t, want, cols)

	for _, rg := range f.Metadata().RowGroups {
		for _, cc := range rg.Columns {
			require.Equal(t, format.Zstd, cc.MetaData.Codec, cc.MetaData.PathInSchema)
			require.NotEmpty(t, cc.MetaData.EncodingStats)
			for _, st := range cc.MetaData.EncodingStats {
				require.Equal(t, format.DataPage, st.PageType, cc.MetaData.PathInSchema)
			}
		}
	}

	var rows []parquet.Row
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		buf := make([]parquet.Row, 100)
		for {
			n, err := rr.ReadRows(buf)
			for _, row := range buf[:n] {
				rows = append(rows, row.Clone())
			}
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.NoError(t, rr.Close())
	}
	require.Len(t, rows, 3000)

	var nulls, nans int
	for r, row := range rows {
		require.Len(t, row, len(schema))
		for i, field := range schema {
			v := row[cols[i]]
			want := recordValue(schema, batches, r, field.Name)
			if want == nil {
				require.True(t, v.IsNull(), "row %d %s: %v", r, field.Name, v)
				require.Zero(t, v.DefinitionLevel())
				nulls++
				continue
			}
			require.False(t, v.IsNull(), "row %d %s", r, field.Name)
			require.Equal(t, 1, v.DefinitionLevel())
			var got any
			switch field.Type {
			case wire.TypeInt:
				got = v.Int64()
			case wire.TypeFloat:
				got = v.Double()
				if w := want.(float64); math.IsNaN(w) {
					require.True(t, math.IsNaN(got.(float64)), "row %d %s", r, field.Name)
					nans++
					continue
				}
			case wire.TypeBool:
				got = v.Boolean()
			case wire.TypeString:
				got = string(v.ByteArray())
			}
			require.Equal(t, want, got, "row %d %s", r, field.Name)
		}
	}
	// 257 null values, 360 null texts, 1200 missing flags, 1 null id.
	require.Equal(t, 257+360+1200+1, nulls)
	require.Equal(t, 1, nans)
	require.Equal(t, "row 0 ✓", string(rows[0][cols[3]].ByteArray()))
	require.Equal(t, "true", string(rows[0][cols[4]].ByteArray()))
	require.Equal(t, "5000", string(rows[1805][cols[4]].ByteArray()))
}

func TestWriteParquetColumnNames(t *testing.T) {
	tests := []string{"a,b", "a.b", "über", "with space", `"quoted"`, "Z", "_"}
	for _, name := range tests {
		t.Run(name, func(t *testing.T) {
			b := &wire.RecordBatch{Rows: 2, Columns: []wire.Column{
				{Name: "m", Type: wire.TypeString, Strings: []string{"x", "y"}},
				{Name: name, Type: wire.TypeInt, Ints: []int64{7, 0}, Nulls: []bool{false, true}},
			}}
			var buf bytes.Buffer
			n, err := Write(&buf, Parquet, SchemaOf(b), []*wire.RecordBatch{b})
			require.NoError(t, err)
			require.EqualValues(t, 2, n)

			f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			require.NoError(t, err)
			leaf, ok := f.Schema().Lookup(name)
			require.True(t, ok)
			rows := make([]parquet.Row, 2)
			rr := f.RowGroups()[0].Rows()
			defer rr.Close()
			got, err := rr.ReadRows(rows)
			if err != io.EOF {
				require.NoError(t, err)
			}
			require.Equal(t, 2, got)
			require.EqualValues(t, 7, rows[0][leaf.ColumnIndex].Int64())
			require.True(t, rows[1][leaf.ColumnIndex].IsNull())
		})
	}
}
