package dataset

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/batchtest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// fields builds a schema from name, type pairs.
var fields = batchtest.Fields

func TestWidenToFit(t *testing.T) {
	batch := func(cols ...wire.Column) *wire.RecordBatch {
		return &wire.RecordBatch{Rows: cols[0].Len(), Columns: cols}
	}
	tests := []struct {
		name   string
		schema []wire.Field
		batch  *wire.RecordBatch
		want   []wire.Field
		wanted []Widened
	}{
		{name: "fits", schema: fields("n", "int"), batch: batch(wire.Column{Name: "n", Type: wire.TypeInt, Ints: []int64{1}}),
			want: fields("n", "int")},
		{name: "canonical text fits an int", schema: fields("n", "int"), batch: batch(wire.Column{Name: "n", Type: wire.TypeString, Strings: []string{"12"}}),
			want: fields("n", "int")},
		{name: "a fraction widens int to float", schema: fields("n", "int"), batch: batch(wire.Column{Name: "n", Type: wire.TypeFloat, Floats: []float64{1.5}}),
			want: fields("n", "float"), wanted: []Widened{{Column: "n", From: wire.TypeInt, To: wire.TypeFloat}}},
		{name: "a code widens int to string", schema: fields("zip", "int", "n", "float"), batch: batch(wire.Column{Name: "zip", Type: wire.TypeString, Strings: []string{"00501"}}),
			want: fields("zip", "string", "n", "float"), wanted: []Widened{{Column: "zip", From: wire.TypeInt, To: wire.TypeString}}},
		{name: "an int a float64 rounds widens float to string", schema: fields("n", "float"), batch: batch(wire.Column{Name: "n", Type: wire.TypeInt, Ints: []int64{1<<53 + 1}}),
			want: fields("n", "string"), wanted: []Widened{{Column: "n", From: wire.TypeFloat, To: wire.TypeString}}},
		{name: "a bool column takes text", schema: fields("b", "bool"), batch: batch(wire.Column{Name: "b", Type: wire.TypeString, Strings: []string{"yes"}}),
			want: fields("b", "string"), wanted: []Widened{{Column: "b", From: wire.TypeBool, To: wire.TypeString}}},
		{name: "a string column holds anything", schema: fields("s", "string"), batch: batch(wire.Column{Name: "s", Type: wire.TypeBool, Bools: []bool{true}}),
			want: fields("s", "string")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.schema)
			got, widened := WidenToFit(tt.schema, []*wire.RecordBatch{tt.batch})
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wanted, widened)
			require.Equal(t, before, tt.schema, "the schema given is not modified")
			_, losses := Fit(got, tt.batch)
			require.Empty(t, losses, "every value fits the widened schema")
			require.True(t, Widens(tt.schema, got))
		})
	}
}

func TestWidens(t *testing.T) {
	tests := []struct {
		from, to []wire.Field
		want     bool
	}{
		{fields("a", "int"), fields("a", "int"), true},
		{fields("a", "int"), fields("a", "int", "b", "bool"), true},
		{fields("a", "int"), fields("a", "float"), true},
		{fields("a", "int", "b", "bool"), fields("a", "string", "b", "string"), true},
		{fields("a", "float"), fields("a", "int"), false},
		{fields("a", "string"), fields("a", "int"), false},
		{fields("a", "int", "b", "int"), fields("b", "int", "a", "int"), false},
		{fields("a", "int", "b", "int"), fields("a", "int"), false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Widens(tt.from, tt.to), "%v → %v", tt.from, tt.to)
	}
}
