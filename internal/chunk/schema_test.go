package chunk

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestMergeSchema(t *testing.T) {
	tests := []struct {
		name string
		a, b []wire.Field
		want []wire.Field
	}{
		{name: "both empty", want: []wire.Field{}},
		{name: "a only", a: fields("x", "int"), want: fields("x", "int")},
		{name: "b only", b: fields("x", "bool"), want: fields("x", "bool")},
		{name: "disjoint keeps a then b", a: fields("z", "int", "a", "string"), b: fields("m", "float"),
			want: fields("z", "int", "a", "string", "m", "float")},
		{name: "first seen order", a: fields("b", "int", "a", "int"), b: fields("c", "int", "a", "int", "d", "bool"),
			want: fields("b", "int", "a", "int", "c", "int", "d", "bool")},
		{name: "same type kept", a: fields("x", "bool"), b: fields("x", "bool"), want: fields("x", "bool")},
		{name: "int then float widens to float", a: fields("x", "int"), b: fields("x", "float"), want: fields("x", "float")},
		{name: "float then int widens to float", a: fields("x", "float"), b: fields("x", "int"), want: fields("x", "float")},
		{name: "int and bool conflict to string", a: fields("x", "int"), b: fields("x", "bool"), want: fields("x", "string")},
		{name: "float and string conflict to string", a: fields("x", "float"), b: fields("x", "string"), want: fields("x", "string")},
		{name: "bool and float conflict to string", a: fields("x", "bool"), b: fields("x", "float"), want: fields("x", "string")},
		{name: "string absorbs int", a: fields("x", "string"), b: fields("x", "int"), want: fields("x", "string")},
		{name: "duplicates within a merge", a: fields("x", "int", "y", "bool", "x", "float"), want: fields("x", "float", "y", "bool")},
		{name: "mixed", a: fields("id", "int", "v", "int", "ok", "bool"), b: fields("v", "float", "ok", "string", "t", "string"),
			want: fields("id", "int", "v", "float", "ok", "string", "t", "string")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := slices.Clone(tt.a), slices.Clone(tt.b)
			got := MergeSchema(tt.a, tt.b)
			require.Equal(t, tt.want, got)
			require.Equal(t, a, tt.a, "a modified")
			require.Equal(t, b, tt.b, "b modified")
			if len(got) > 0 && len(tt.a) > 0 {
				got[0].Type = "changed"
				require.Equal(t, a, tt.a, "result shares memory with a")
			}
		})
	}
}

func TestSchemaOf(t *testing.T) {
	b := &wire.RecordBatch{Rows: 1, Columns: []wire.Column{
		{Name: "s", Type: wire.TypeString, Strings: []string{"x"}},
		{Name: "i", Type: wire.TypeInt, Ints: []int64{1}},
	}}
	require.Equal(t, fields("s", "string", "i", "int"), SchemaOf(b))
	require.Empty(t, SchemaOf(&wire.RecordBatch{}))
	require.Nil(t, SchemaOf(nil))
}

func TestFingerprint(t *testing.T) {
	base := fields("id", "int", "text", "string")
	require.Len(t, Fingerprint(base), 16)
	require.Regexp(t, `^[0-9a-f]{16}$`, Fingerprint(base))

	tests := []struct {
		name      string
		a, b      []wire.Field
		wantEqual bool
	}{
		{name: "stable", a: base, b: fields("id", "int", "text", "string"), wantEqual: true},
		{name: "empty stable", a: nil, b: []wire.Field{}, wantEqual: true},
		{name: "type differs", a: base, b: fields("id", "float", "text", "string")},
		{name: "order differs", a: base, b: fields("text", "string", "id", "int")},
		{name: "name differs", a: base, b: fields("ID", "int", "text", "string")},
		{name: "extra field", a: base, b: fields("id", "int", "text", "string", "x", "bool")},
		{name: "name and type boundary", a: fields("ab", "int"), b: fields("a", "bint")},
		{name: "field boundary", a: fields("a", "int", "b", "int"), b: fields("a", "intb", "", "int")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantEqual {
				require.Equal(t, Fingerprint(tt.a), Fingerprint(tt.b))
			} else {
				require.NotEqual(t, Fingerprint(tt.a), Fingerprint(tt.b))
			}
		})
	}
}

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
