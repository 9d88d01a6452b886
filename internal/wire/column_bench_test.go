package wire

import (
	"fmt"
	"testing"
)

func benchBatch() *RecordBatch {
	const n = 1000
	b := &RecordBatch{SourceID: "s", Dataset: "ds", Rows: n}
	ids, vals, flags, names := make([]int64, n), make([]float64, n), make([]bool, n), make([]string, n)
	for i := range n {
		ids[i], vals[i], flags[i], names[i] = int64(i), float64(i)/7, i%2 == 0, fmt.Sprint("row ", i, " some text")
	}
	b.Columns = []Column{
		{Name: "id", Type: TypeInt, Ints: ids}, {Name: "value", Type: TypeFloat, Floats: vals},
		{Name: "flag", Type: TypeBool, Bools: flags}, {Name: "text", Type: TypeString, Strings: names, Nulls: make([]bool, n)},
	}
	return b
}

func BenchmarkEncodeBatch(b *testing.B) {
	batch := benchBatch()
	for b.Loop() {
		if _, err := Encode(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	data, _ := Encode(benchBatch())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var out RecordBatch
		if err := Decode(data, &out); err != nil {
			b.Fatal(err)
		}
	}
}
