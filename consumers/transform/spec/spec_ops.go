package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// appendText appends row i of c as text: strings as they are, numbers as
// strconv formats them (floats shortest, 'g'), bools as "true" or "false",
// timestamps in RFC 3339, UTC.
func appendText(buf []byte, c *wire.Column, i int) []byte {
	switch c.Type {
	case wire.TypeInt:
		return strconv.AppendInt(buf, c.Ints[i], 10)
	case wire.TypeTimestamp:
		return chunk.AppendTimestamp(buf, c.Ints[i])
	case wire.TypeFloat:
		return strconv.AppendFloat(buf, c.Floats[i], 'g', -1, 64)
	case wire.TypeBool:
		return strconv.AppendBool(buf, c.Bools[i])
	default:
		return append(buf, c.Strings[i]...)
	}
}

// columnBuilder fills one typed column, row by row.
type columnBuilder struct {
	c     wire.Column
	nulls int
}

func newBuilder(name string, t wire.Type, rows int) *columnBuilder {
	cb := &columnBuilder{c: wire.Column{Name: name, Type: t}}
	switch t {
	case wire.TypeInt, wire.TypeTimestamp:
		cb.c.Ints = make([]int64, rows)
	case wire.TypeFloat:
		cb.c.Floats = make([]float64, rows)
	case wire.TypeBool:
		cb.c.Bools = make([]bool, rows)
	default:
		cb.c.Strings = make([]string, rows)
	}
	return cb
}

func (cb *columnBuilder) null(i int) {
	if cb.c.Nulls == nil {
		cb.c.Nulls = make([]bool, cb.c.Len())
	}
	cb.c.Nulls[i] = true
	cb.nulls++
}

// column returns the column, without Nulls when it has no null.
func (cb *columnBuilder) column() wire.Column {
	if cb.nulls == 0 {
		cb.c.Nulls = nil
	}
	return cb.c
}

// castColumn converts c to type to. A value that does not convert exactly
// becomes null. Numbers and timestamps convert through Unix seconds.
func castColumn(c *wire.Column, to wire.Type, rows int) wire.Column {
	if c.Type == to {
		return *c
	}
	cb := newBuilder(c.Name, to, rows)
	var buf []byte
	for i := range rows {
		if c.IsNull(i) {
			cb.null(i)
			continue
		}
		ok := true
		switch to {
		case wire.TypeString:
			buf = appendText(buf[:0], c, i)
			cb.c.Strings[i] = string(buf)
		case wire.TypeInt:
			cb.c.Ints[i], ok = toInt(c, i)
		case wire.TypeFloat:
			cb.c.Floats[i], ok = toFloat(c, i)
		case wire.TypeBool:
			cb.c.Bools[i], ok = toBool(c, i)
		case wire.TypeTimestamp:
			cb.c.Ints[i], ok = toTimestamp(c, i)
		}
		if !ok {
			cb.null(i)
		}
	}
	return cb.column()
}

func toInt(c *wire.Column, i int) (int64, bool) {
	switch c.Type {
	case wire.TypeInt:
		return c.Ints[i], true
	case wire.TypeTimestamp:
		return floorDiv(c.Ints[i], 1_000_000), true
	case wire.TypeFloat:
		return floatToInt(c.Floats[i])
	case wire.TypeBool:
		if c.Bools[i] {
			return 1, true
		}
		return 0, true
	default:
		s := strings.TrimSpace(c.Strings[i])
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return floatToInt(f)
		}
		return 0, false
	}
}

// floatToInt converts f when it is a whole number int64 holds.
func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func toFloat(c *wire.Column, i int) (float64, bool) {
	switch c.Type {
	case wire.TypeInt:
		return float64(c.Ints[i]), true
	case wire.TypeTimestamp:
		return float64(c.Ints[i]) / 1e6, true
	case wire.TypeFloat:
		return c.Floats[i], true
	case wire.TypeBool:
		if c.Bools[i] {
			return 1, true
		}
		return 0, true
	default:
		f, err := strconv.ParseFloat(strings.TrimSpace(c.Strings[i]), 64)
		return f, err == nil
	}
}

func toBool(c *wire.Column, i int) (bool, bool) {
	switch c.Type {
	case wire.TypeInt:
		return c.Ints[i] != 0, true
	case wire.TypeFloat:
		f := c.Floats[i]
		return f != 0, !math.IsNaN(f)
	case wire.TypeBool:
		return c.Bools[i], true
	case wire.TypeString:
		return parseBoolText(c.Strings[i])
	}
	return false, false
}

// parseBoolText reads true/false, t/f, yes/no, y/n, on/off and 1/0 in any
// case, around white space.
func parseBoolText(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "yes", "y", "on", "1":
		return true, true
	case "false", "f", "no", "n", "off", "0":
		return false, true
	}
	return false, false
}

func toTimestamp(c *wire.Column, i int) (int64, bool) {
	switch c.Type {
	case wire.TypeInt:
		v := c.Ints[i]
		if v > math.MaxInt64/1_000_000 || v < math.MinInt64/1_000_000 {
			return 0, false
		}
		return v * 1_000_000, true
	case wire.TypeFloat:
		us := math.Floor(c.Floats[i] * 1e6)
		if math.IsNaN(us) || us < -(1<<63) || us >= 1<<63 {
			return 0, false
		}
		return int64(us), true
	case wire.TypeTimestamp:
		return c.Ints[i], true
	case wire.TypeString:
		return parse.Timestamp(strings.TrimSpace(c.Strings[i]))
	}
	return 0, false
}

// lowerColumn lower-cases the strings of c.
func lowerColumn(c *wire.Column) {
	for i, s := range c.Strings {
		if needsLower(s) {
			c.Strings[i] = strings.ToLower(s)
		}
	}
}

// needsLower reports whether s may hold an upper-case letter.
func needsLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return true
		}
	}
	return false
}

// trimColumn trims the strings of c and collapses their inner white space.
func trimColumn(c *wire.Column) {
	for i, s := range c.Strings {
		if t, changed := collapseSpace(s); changed {
			c.Strings[i] = t
		}
	}
}

// collapseSpace drops leading and trailing white space and turns every
// inner run of it into one ' '.
func collapseSpace(s string) (string, bool) {
	// Fast path: ASCII without a leading, trailing, doubled or non-' '
	// space.
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' {
			clean = false
			break
		}
		if c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ') {
			clean = false
			break
		}
	}
	if clean {
		return s, false
	}
	var sb strings.Builder
	sb.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	t := sb.String()
	return t, t != s
}

// deriveFunc computes a feature column from c.
type deriveFunc func(r *Run, c *wire.Column, rows int, as string) (wire.Column, error)

type deriveOp struct {
	col, as string
	fn      deriveFunc
}

func (o *deriveOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	i, err := r.column(b, o.col, true)
	if err != nil {
		return nil, err
	}
	out, err := o.fn(r, &b.Columns[i], b.Rows, o.as)
	if err != nil {
		return nil, err
	}
	put(b, out)
	return b, nil
}

// deriveLog1p computes ln(1+x) of numbers; strings are parsed, and a value
// that is not a number, or below -1, gives null.
func deriveLog1p(_ *Run, c *wire.Column, rows int, as string) (wire.Column, error) {
	cb := newBuilder(as, wire.TypeFloat, rows)
	out := cb.c.Floats
	switch c.Type {
	case wire.TypeFloat:
		for i, x := range c.Floats {
			out[i] = math.Log1p(x)
		}
	case wire.TypeInt:
		for i, x := range c.Ints {
			out[i] = math.Log1p(float64(x))
		}
	case wire.TypeString:
		for i, s := range c.Strings {
			x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				x = math.NaN()
			}
			out[i] = math.Log1p(x)
		}
	default:
		return wire.Column{}, fmt.Errorf("column %q holds %s values in this batch, want numbers", c.Name, c.Type)
	}
	for i, v := range out {
		if c.IsNull(i) || math.IsNaN(v) || math.IsInf(v, 0) {
			out[i] = 0
			cb.null(i)
		}
	}
	return cb.column(), nil
}

// deriveTokens counts the white-space separated tokens of the value's text.
func deriveTokens(r *Run, c *wire.Column, rows int, as string) (wire.Column, error) {
	return deriveInt(r, c, rows, as, countTokens)
}

// deriveLength counts the characters of the value's text.
func deriveLength(r *Run, c *wire.Column, rows int, as string) (wire.Column, error) {
	return deriveInt(r, c, rows, as, func(s string) int64 { return int64(utf8.RuneCountInString(s)) })
}

func deriveInt(r *Run, c *wire.Column, rows int, as string, fn func(string) int64) (wire.Column, error) {
	cb := newBuilder(as, wire.TypeInt, rows)
	if c.Type == wire.TypeString {
		for i, s := range c.Strings {
			cb.c.Ints[i] = fn(s)
		}
	} else {
		for i := range rows {
			r.buf = appendText(r.buf[:0], c, i)
			cb.c.Ints[i] = fn(string(r.buf))
		}
	}
	for i := range c.Nulls {
		if c.Nulls[i] {
			cb.c.Ints[i] = 0
			cb.null(i)
		}
	}
	return cb.column(), nil
}

// asciiSpace marks the ASCII white space characters unicode.IsSpace knows.
var asciiSpace = [utf8.RuneSelf]bool{' ': true, '\t': true, '\n': true, '\v': true, '\f': true, '\r': true}

// countTokens counts the runs of non-space characters in s.
func countTokens(s string) int64 {
	var n int64
	in := false
	for i := 0; i < len(s); {
		c := s[i]
		var space bool
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			space = unicode.IsSpace(r)
			i += size
		}
		if !space && !in {
			n++
		}
		in = !space
	}
	return n
}

type hashBucketOp struct {
	col, as string
	n       uint64
}

func (o *hashBucketOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	i, err := r.column(b, o.col, true)
	if err != nil {
		return nil, err
	}
	c := &b.Columns[i]
	cb := newBuilder(o.as, wire.TypeInt, b.Rows)
	for row := range b.Rows {
		if c.IsNull(row) {
			cb.null(row)
			continue
		}
		var h uint64
		if c.Type == wire.TypeString {
			h = fnvString(fnvOffset, c.Strings[row])
		} else {
			r.buf = appendText(r.buf[:0], c, row)
			h = fnvBytes(fnvOffset, r.buf)
		}
		cb.c.Ints[row] = int64(h % o.n)
	}
	put(b, cb.column())
	return b, nil
}

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

type oneHotOp struct {
	col   string
	names []string
	index map[string]int
}

func (o *oneHotOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	i, err := r.column(b, o.col, true)
	if err != nil {
		return nil, err
	}
	c := &b.Columns[i]
	outs := make([][]int64, len(o.names))
	for k := range outs {
		outs[k] = make([]int64, b.Rows)
	}
	for row := range b.Rows {
		if c.IsNull(row) {
			continue
		}
		var k int
		var ok bool
		if c.Type == wire.TypeString {
			k, ok = o.index[c.Strings[row]]
		} else {
			r.buf = appendText(r.buf[:0], c, row)
			k, ok = o.index[string(r.buf)]
		}
		if ok {
			outs[k][row] = 1
		}
	}
	for k, name := range o.names {
		put(b, wire.Column{Name: name, Type: wire.TypeInt, Ints: outs[k]})
	}
	return b, nil
}
