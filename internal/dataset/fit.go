package dataset

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Evolve returns the dataset schema that follows have once a chunk with
// the columns of got commits: every column of have keeps its type and its
// place, and the columns new to have are appended with got's types. A
// type changes only by WidenToFit, a new schema version after which the
// earlier chunks are written again (docs/schema.md). Evolve never modifies
// have or got.
func Evolve(have, got []wire.Field) []wire.Field {
	out := make([]wire.Field, len(have), len(have)+len(got))
	copy(out, have)
	known := make(map[string]bool, len(have))
	for _, f := range have {
		known[f.Name] = true
	}
	for _, f := range got {
		if !known[f.Name] {
			known[f.Name] = true
			out = append(out, f)
		}
	}
	return out
}

// Widened is a column whose type a dataset schema widens so that a batch's
// values fit it unchanged.
type Widened struct {
	// Column is the column's name.
	Column string
	// From is the schema's type before, To after.
	From, To wire.Type
}

// WidenToFit returns schema with the type of every column that a batch's
// values would not fit unchanged widened until they do: int to float when
// each value is exact as a float64, anything else to string, which holds
// every value as its text. It returns the widened columns; schema itself is
// not modified. Widening to string keeps a value's text only where the
// transform stage kept it: a value typed as a number prints back as its
// original text (see ExactFloat).
func WidenToFit(schema []wire.Field, batches []*wire.RecordBatch) ([]wire.Field, []Widened) {
	out := slices.Clone(schema)
	at := make(map[string]int, len(out))
	for i, f := range out {
		at[f.Name] = i
	}
	var widened []Widened
	for _, b := range batches {
		for {
			_, losses := Fit(out, b)
			if len(losses) == 0 {
				break
			}
			for _, l := range losses {
				i := at[l.Column]
				to, _ := chunk.Widen(l.Want, l.Have)
				if to == l.Want {
					to = wire.TypeString // ints a float64 would round
				}
				out[i].Type = to
				if k := slices.IndexFunc(widened, func(w Widened) bool { return w.Column == l.Column }); k >= 0 {
					widened[k].To = to
				} else {
					widened = append(widened, Widened{Column: l.Column, From: l.Want, To: to})
				}
			}
		}
	}
	return out, widened
}

// Widens reports whether the schema to holds the columns of from, in the
// same order, each of the same type or one that holds it unchanged (float
// for int, string for anything): chunks of from can be written again in to.
func Widens(from, to []wire.Field) bool {
	if len(to) < len(from) {
		return false
	}
	for i, f := range from {
		g := to[i]
		if g.Name != f.Name {
			return false
		}
		if w, _ := chunk.Widen(f.Type, g.Type); g.Type != f.Type && w != g.Type {
			return false
		}
	}
	return true
}

// Loss counts the values of one batch column that the schema's type for
// it cannot hold without changing them: they are written as null.
type Loss struct {
	// Column is the column's name.
	Column string
	// Have is the batch's type for it, Want the schema's.
	Have, Want wire.Type
	// Values counts the values written as null.
	Values int
	// First is the text of the first such value.
	First string
}

// Fit returns b with each column that does not already fit its schema type
// converted to it, and the losses: values whose conversion would change
// them become null. Conversions that lose nothing: int to float (up to
// 2^53), a float that is an integer to int, a string that is the canonical
// text of a value to int, float or bool, and anything to string (Write
// formats those). b is not modified; the result shares its columns where
// they need no conversion.
func Fit(schema []wire.Field, b *wire.RecordBatch) (*wire.RecordBatch, []Loss) {
	types := make(map[string]wire.Type, len(schema))
	for _, f := range schema {
		types[f.Name] = f.Type
	}
	var out *wire.RecordBatch
	var losses []Loss
	for i := range b.Columns {
		c := &b.Columns[i]
		want, ok := types[c.Name]
		if !ok || want == c.Type || want == wire.TypeString || c.AllNull(b.Rows) {
			continue
		}
		conv, loss := convertColumn(c, b.Rows, want)
		if conv == nil {
			continue // int to float, every value exact: Write widens it
		}
		if out == nil {
			cp := *b
			cp.Columns = append([]wire.Column(nil), b.Columns...)
			out = &cp
		}
		out.Columns[i] = *conv
		if loss.Values > 0 {
			losses = append(losses, loss)
		}
	}
	if out == nil {
		return b, nil
	}
	return out, losses
}

// maxExactInt is the largest magnitude below which every int64 is exactly a
// float64.
const maxExactInt = 1 << 53

// convertColumn returns c as a column of type want, and what it lost; nil
// when c is an int column whose values all widen exactly to float.
func convertColumn(c *wire.Column, rows int, want wire.Type) (*wire.Column, Loss) {
	loss := Loss{Column: c.Name, Have: c.Type, Want: want}
	if c.Type == wire.TypeInt && want == wire.TypeFloat {
		exact := true
		for r, v := range c.Ints {
			if !c.IsNull(r) && (v > maxExactInt || v < -maxExactInt) {
				exact = false
				break
			}
		}
		if exact {
			return nil, loss
		}
	}
	out := &wire.Column{Name: c.Name, Type: want, Nulls: make([]bool, rows)}
	switch want {
	case wire.TypeInt, wire.TypeTimestamp:
		out.Ints = make([]int64, rows)
	case wire.TypeFloat:
		out.Floats = make([]float64, rows)
	case wire.TypeBool:
		out.Bools = make([]bool, rows)
	}
	for r := range rows {
		if c.IsNull(r) {
			out.Nulls[r] = true
			continue
		}
		if !convertValue(c, r, out) {
			out.Nulls[r] = true
			if loss.Values == 0 {
				loss.First = string(chunk.AppendText(nil, c, r))
			}
			loss.Values++
		}
	}
	return out, loss
}

// convertValue sets row r of out from row r of c, or reports false when
// the value would change.
func convertValue(c *wire.Column, r int, out *wire.Column) bool {
	switch {
	case c.Type == wire.TypeInt && out.Type == wire.TypeFloat:
		v := c.Ints[r]
		out.Floats[r] = float64(v)
		return v <= maxExactInt && v >= -maxExactInt
	case c.Type == wire.TypeFloat && out.Type == wire.TypeInt:
		f := c.Floats[r]
		if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
			return false
		}
		out.Ints[r] = int64(f)
		return true
	case c.Type != wire.TypeString:
		return false // bool, timestamp and numbers do not cross over
	}
	s := c.Strings[r]
	switch out.Type {
	case wire.TypeInt:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(v, 10) != s {
			return false
		}
		out.Ints[r] = v
		return true
	case wire.TypeFloat:
		f, ok := ExactFloat(s)
		out.Floats[r] = f
		return ok
	case wire.TypeBool:
		switch {
		case strings.EqualFold(s, "true"):
			out.Bools[r] = true
			return true
		case strings.EqualFold(s, "false"):
			return true
		}
	}
	return false // timestamps are told by the transform stage only
}

// ExactFloat parses s as a decimal number (-?digits[.digits][e[+-]digits])
// and reports whether the float64 it gives prints back as the same number:
// the same significant digits at the same place, so "1.50" and "1.5e0"
// are exact, while "12345678901234567890" and "0.1000000000000000000001",
// which a float64 would round, are not. A value with at most 15
// significant digits is always exact when it neither overflows nor
// underflows.
func ExactFloat(s string) (float64, bool) {
	n := 0 // digits, exponent's included: at least the significant ones
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			n++
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
		default:
			return 0, false // hex, NaN, Inf, underscores
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	if n <= 15 && math.Abs(f) >= 0x1p-1022 {
		return f, true // the common case, without allocating
	}
	digits, point, ok := decimal(s)
	switch {
	case !ok:
		return 0, false
	case digits == "":
		return f, true // zero
	case f == 0:
		return 0, false // underflowed
	}
	got, gotPoint, _ := decimal(strconv.FormatFloat(f, 'e', -1, 64))
	return f, got == digits && gotPoint == point
}

// decimal returns the significant digits of a decimal number s (no leading
// or trailing zeros; "" for zero) and the power of ten of its first digit.
func decimal(s string) (digits string, point int, ok bool) {
	s = strings.TrimPrefix(s, "-")
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	e := 0
	if hasExp {
		v, err := strconv.Atoi(exp)
		if err != nil || exp == "" || exp[0] == '_' {
			return "", 0, false
		}
		e = v
	}
	whole, frac, _ := strings.Cut(mant, ".")
	if whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return "", 0, false
	}
	all := whole + frac
	trimmed := strings.TrimLeft(all, "0")
	lead := len(all) - len(trimmed)
	trimmed = strings.TrimRight(trimmed, "0")
	return trimmed, e + len(whole) - lead - 1, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
