package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// MergeSchema returns the union of a and b: fields in the order they are
// first seen, a before b. A name seen with two types takes the wider one:
// int and float widen to float, any other conflict widens to string.
// MergeSchema never modifies a or b; the result shares no memory with them.
func MergeSchema(a, b []wire.Field) []wire.Field {
	out := make([]wire.Field, 0, len(a)+len(b))
	at := make(map[string]int, len(a)+len(b))
	for _, fields := range [][]wire.Field{a, b} {
		for _, f := range fields {
			if i, ok := at[f.Name]; ok {
				out[i].Type = widen(out[i].Type, f.Type)
				continue
			}
			at[f.Name] = len(out)
			out = append(out, f)
		}
	}
	return out
}

// widen returns the narrowest type that holds values of both x and y.
func widen(x, y wire.Type) wire.Type {
	switch {
	case x == y:
		return x
	case (x == wire.TypeInt && y == wire.TypeFloat) || (x == wire.TypeFloat && y == wire.TypeInt):
		return wire.TypeFloat
	default:
		return wire.TypeString
	}
}

// SchemaOf returns the fields of b's columns, in column order.
func SchemaOf(b *wire.RecordBatch) []wire.Field {
	if b == nil {
		return nil
	}
	fields := make([]wire.Field, len(b.Columns))
	for i := range b.Columns {
		fields[i] = wire.Field{Name: b.Columns[i].Name, Type: b.Columns[i].Type}
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
