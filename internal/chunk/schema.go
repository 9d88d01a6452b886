package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Conflict is a column that two schemas type in ways no widening reconciles
// (bool and int, timestamp and float, string and anything else): the merged
// schema holds it as a string, every value formatted as text. docs/schema.md
// describes the rule.
type Conflict struct {
	// Name is the column's name.
	Name string
	// Have is the column's type in the first schema, Got its type in the
	// second.
	Have, Got wire.Type
}

// MergeSchema returns the union of a and b: fields in the order they are
// first seen, a before b. A column new to a is simply added (every column is
// nullable). A name seen with two types takes the wider one: int and float
// widen to float; any other pair is a conflict and becomes string, as
// MergeSchemaReport tells. MergeSchema never modifies a or b; the result
// shares no memory with them.
func MergeSchema(a, b []wire.Field) []wire.Field {
	out, _ := MergeSchemaReport(a, b)
	return out
}

// MergeSchemaReport is MergeSchema that also returns the conflicts it
// resolved to string, in the order it met them, so that the caller can
// report them: a caller merging batch after batch meets the same conflict
// again and should report a column once.
func MergeSchemaReport(a, b []wire.Field) ([]wire.Field, []Conflict) {
	out := make([]wire.Field, 0, len(a)+len(b))
	at := make(map[string]int, len(a)+len(b))
	var conflicts []Conflict
	for _, fields := range [][]wire.Field{a, b} {
		for _, f := range fields {
			i, ok := at[f.Name]
			if !ok {
				at[f.Name] = len(out)
				out = append(out, f)
				continue
			}
			have := out[i].Type
			t, ok := Widen(have, f.Type)
			if !ok {
				conflicts = append(conflicts, Conflict{Name: f.Name, Have: have, Got: f.Type})
			}
			out[i].Type = t
		}
	}
	return out, conflicts
}

// Widen returns the narrowest type that holds values of both x and y, and
// false when that is string only because they conflict.
func Widen(x, y wire.Type) (wire.Type, bool) {
	switch {
	case x == y:
		return x, true
	case (x == wire.TypeInt && y == wire.TypeFloat) || (x == wire.TypeFloat && y == wire.TypeInt):
		return wire.TypeFloat, true
	default:
		return wire.TypeString, false
	}
}

// SchemaOf returns the fields of b's columns that hold a value, in column
// order. A column that is null in every row has no type to tell: it is left
// out, so that it does not turn the column of a dataset into a conflict, and
// chunk.Write takes it as null wherever the schema puts it.
func SchemaOf(b *wire.RecordBatch) []wire.Field {
	if b == nil {
		return nil
	}
	fields := make([]wire.Field, 0, len(b.Columns))
	for i := range b.Columns {
		c := &b.Columns[i]
		if c.AllNull(b.Rows) {
			continue
		}
		fields = append(fields, wire.Field{Name: c.Name, Type: c.Type})
	}
	return fields
}

// Fingerprint identifies a schema: the first 16 hex digits of the SHA-256 of
// its canonical encoding. The encoding lists the fields in order, each as
// "<len(name)>:<name><len(type)>:<type>", so order matters and no two
// different schemas share an encoding.
func Fingerprint(fields []wire.Field) string {
	h := sha256.New()
	var buf []byte
	for _, f := range fields {
		buf = buf[:0]
		buf = strconv.AppendInt(buf, int64(len(f.Name)), 10)
		buf = append(buf, ':')
		buf = append(buf, f.Name...)
		buf = strconv.AppendInt(buf, int64(len(f.Type)), 10)
		buf = append(buf, ':')
		buf = append(buf, f.Type...)
		h.Write(buf)
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:8])
}
