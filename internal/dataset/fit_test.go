package dataset_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestExactFloat(t *testing.T) {
	for _, tc := range []struct {
		text  string
		want  float64
		exact bool
	}{
		{"1.5", 1.5, true},
		{"1.50", 1.5, true},
		{"-0.25e1", -2.5, true},
		{"0", 0, true},
		{"0.000", 0, true},
		{"1e300", 1e300, true},
		{"0.1", 0.1, true},
		{"9007199254740993", 0, false},     // 2^53+1: the float64 is 2^53
		{"12345678901234567890", 0, false}, // past int64, rounded as float
		{"0.1000000000000000000001", 0, false},
		{"1e-400", 0, false}, // underflows
		{"1e400", 0, false},  // overflows
		{"abc", 0, false},
		{"0x1p-2", 0, false},
		{"NaN", 0, false},
		{"1_000", 0, false},
		{"", 0, false},
		{".", 0, false},
	} {
		t.Run(tc.text, func(t *testing.T) {
			f, ok := dataset.ExactFloat(tc.text)
			require.Equal(t, tc.exact, ok)
			if ok {
				require.Equal(t, tc.want, f)
			}
		})
	}
}

func TestEvolveKeepsTypesAndOrder(t *testing.T) {
	have := []wire.Field{{Name: "zip", Type: wire.TypeString}, {Name: "n", Type: wire.TypeInt}}
	got := []wire.Field{{Name: "n", Type: wire.TypeFloat}, {Name: "new", Type: wire.TypeBool}, {Name: "zip", Type: wire.TypeInt}}
	require.Equal(t, []wire.Field{
		{Name: "zip", Type: wire.TypeString}, {Name: "n", Type: wire.TypeInt}, {Name: "new", Type: wire.TypeBool},
	}, dataset.Evolve(have, got))
	require.Len(t, have, 2, "have is not modified")
}

func TestFitConvertsWhatLosesNothing(t *testing.T) {
	nulls := func(n int, at ...int) []bool {
		b := make([]bool, n)
		for _, i := range at {
			b[i] = true
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		col    wire.Column
		to     wire.Type
		want   wire.Column
		lost   int
		first  string
		shared bool // the batch is returned as it is
	}{
		{
			name: "int to float, exact: left to Write", col: wire.Column{Type: wire.TypeInt, Ints: []int64{1, -2}},
			to: wire.TypeFloat, shared: true,
		},
		{
			name: "int to float past 2^53", col: wire.Column{Type: wire.TypeInt, Ints: []int64{1, 1<<53 + 1}},
			to: wire.TypeFloat, want: wire.Column{Type: wire.TypeFloat, Floats: []float64{1, 1 << 53}, Nulls: nulls(2, 1)},
			lost: 1, first: "9007199254740993",
		},
		{
			name: "float to int", col: wire.Column{Type: wire.TypeFloat, Floats: []float64{3, 2.5}},
			to: wire.TypeInt, want: wire.Column{Type: wire.TypeInt, Ints: []int64{3, 0}, Nulls: nulls(2, 1)},
			lost: 1, first: "2.5",
		},
		{
			name: "string to int keeps leading zeros out",
			col:  wire.Column{Type: wire.TypeString, Strings: []string{"501", "00501", "", "x"}, Nulls: nulls(4, 2)},
			to:   wire.TypeInt, want: wire.Column{Type: wire.TypeInt, Ints: []int64{501, 0, 0, 0}, Nulls: nulls(4, 1, 2, 3)},
			lost: 2, first: "00501",
		},
		{
			name: "string to float", col: wire.Column{Type: wire.TypeString, Strings: []string{"1.50", "12345678901234567890"}},
			to: wire.TypeFloat, want: wire.Column{Type: wire.TypeFloat, Floats: []float64{1.5, 12345678901234567890}, Nulls: nulls(2, 1)},
			lost: 1, first: "12345678901234567890",
		},
		{
			name: "string to bool", col: wire.Column{Type: wire.TypeString, Strings: []string{"TRUE", "false", "yes"}},
			to: wire.TypeBool, want: wire.Column{Type: wire.TypeBool, Bools: []bool{true, false, false}, Nulls: nulls(3, 2)},
			lost: 1, first: "yes",
		},
		{
			name: "bool to int crosses over: null", col: wire.Column{Type: wire.TypeBool, Bools: []bool{true}},
			to: wire.TypeInt, want: wire.Column{Type: wire.TypeInt, Ints: []int64{0}, Nulls: nulls(1, 0)},
			lost: 1, first: "true",
		},
		{
			name: "anything to string: Write formats it", col: wire.Column{Type: wire.TypeFloat, Floats: []float64{1.5}},
			to: wire.TypeString, shared: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.col.Name = "c"
			b := &wire.RecordBatch{SourceID: "s", Rows: tc.col.Len(), Columns: []wire.Column{tc.col}}
			fitted, losses := dataset.Fit([]wire.Field{{Name: "c", Type: tc.to}}, b)
			if tc.shared {
				require.Same(t, b, fitted)
				require.Empty(t, losses)
				return
			}
			tc.want.Name = "c"
			require.Equal(t, tc.want, fitted.Columns[0])
			require.Equal(t, tc.col, b.Columns[0], "the batch is not modified")
			require.Equal(t, []dataset.Loss{{Column: "c", Have: tc.col.Type, Want: tc.to, Values: tc.lost, First: tc.first}}, losses)
		})
	}
}
