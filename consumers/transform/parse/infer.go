package parse

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// column collects one column's values for the current batch as text and
// narrows the type they all share as they come in. ints holds the parsed
// values while the column may still be int, so ints are parsed once.
type column struct {
	name      string
	raw       []string // one entry per row; "" for nulls
	nulls     []bool   // nil until the first null
	nullCount int
	ints      []int64 // valid while canInt
	times     []int64 // valid while canTime: microseconds since the epoch
	canInt    bool
	canFloat  bool
	canBool   bool
	canTime   bool
	// floor is the widest type the column had in the source's earlier
	// batches ("" before the first value): a later batch is never
	// narrower, so a source's batches agree whichever commits first (codes
	// whose first rows have leading zeros stay text in every batch).
	floor wire.Type
}

func newColumn(name string, capHint int) *column {
	c := &column{raw: make([]string, 0, capHint), ints: make([]int64, 0, capHint)}
	c.reset(name)
	return c
}

// reset empties c for a new batch, keeping its buffers.
func (c *column) reset(name string) {
	c.name = name
	clear(c.raw)
	c.raw = c.raw[:0]
	c.nulls = c.nulls[:0]
	c.nullCount = 0
	c.ints = c.ints[:0]
	c.times = c.times[:0]
	c.canInt, c.canFloat, c.canBool, c.canTime = true, true, true, true
	switch c.floor {
	case wire.TypeInt:
		c.canBool, c.canTime = false, false
	case wire.TypeFloat:
		c.canInt, c.canBool, c.canTime = false, false, false
	case wire.TypeBool:
		c.canInt, c.canFloat, c.canTime = false, false, false
	case wire.TypeTimestamp:
		c.canInt, c.canFloat, c.canBool = false, false, false
	case wire.TypeString:
		c.canInt, c.canFloat, c.canBool, c.canTime = false, false, false, false
	}
}

func (c *column) noInt() {
	c.canInt = false
	c.ints = c.ints[:0]
}

func (c *column) noTime() {
	c.canTime = false
	c.times = c.times[:0]
}

// addNulls appends n nulls.
func (c *column) addNulls(n int) {
	if c.nullCount == 0 {
		// The first null: mark every earlier row as present.
		c.nulls = c.nulls[:0]
		for range c.raw {
			c.nulls = append(c.nulls, false)
		}
	}
	for range n {
		c.nulls = append(c.nulls, true)
		c.raw = append(c.raw, "")
		if c.canInt {
			c.ints = append(c.ints, 0)
		}
		if c.canTime {
			c.times = append(c.times, 0)
		}
	}
	c.nullCount += n
}

// addPresent appends the bookkeeping of a non-null value; the caller
// appends the value itself to raw (and ints).
func (c *column) addPresent() {
	if c.nullCount > 0 {
		c.nulls = append(c.nulls, false)
	}
}

// addText appends a CSV field: empty is null, anything else is classified
// by its text. ascii says s is known to be ASCII, so valid UTF-8.
func (c *column) addText(s string, ascii bool) {
	if s == "" {
		c.addNulls(1)
		return
	}
	c.addPresent()
	if c.canInt {
		if v, ok := parseCanonicalInt(s); ok {
			c.ints = append(c.ints, v)
			c.canBool = false
			if c.canTime {
				c.noTime()
			}
			c.raw = append(c.raw, s)
			return
		}
		c.noInt()
	}
	if c.canFloat {
		if isFloatText(s) {
			c.canBool = false
			if c.canTime {
				c.noTime()
			}
			c.raw = append(c.raw, s)
			return
		}
		c.canFloat = false
	}
	if c.canBool {
		if isBoolText(s) {
			if c.canTime {
				c.noTime()
			}
			c.raw = append(c.raw, s)
			return
		}
		c.canBool = false
	}
	if c.canTime {
		if us, ok := Timestamp(s); ok {
			c.times = append(c.times, us)
			c.raw = append(c.raw, s)
			return
		}
		c.noTime()
	}
	// Numbers and booleans are ASCII; only strings need checking.
	if !ascii && !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	c.raw = append(c.raw, s)
}

// jsonKind is the kind of a JSON value.
type jsonKind uint8

const (
	kindNull jsonKind = iota
	kindInt
	kindFloat
	kindBool
	kindString // strings, and objects and arrays as their JSON text
)

// addJSON appends a JSON value of kind k: text is its string value or, for
// numbers and booleans, its JSON text; iv is the value of an int.
func (c *column) addJSON(k jsonKind, text string, iv int64) {
	if k == kindNull {
		c.addNulls(1)
		return
	}
	c.addPresent()
	if c.canTime {
		us, ok := int64(0), false
		if k == kindString {
			us, ok = Timestamp(text)
		}
		if ok {
			c.times = append(c.times, us)
		} else {
			c.noTime()
		}
	}
	switch k {
	case kindInt:
		if c.canInt {
			c.ints = append(c.ints, iv)
		}
		c.canBool = false
	case kindFloat:
		if c.canInt {
			c.noInt()
		}
		c.canBool = false
	case kindBool:
		if c.canInt {
			c.noInt()
		}
		c.canFloat = false
	default:
		if c.canInt {
			c.noInt()
		}
		c.canFloat, c.canBool = false, false
	}
	c.raw = append(c.raw, text)
}

// dropLast removes the last value, for a JSON key repeated in one object:
// the last one wins. The type stays as wide as the dropped value made it.
func (c *column) dropLast() {
	n := len(c.raw) - 1
	if c.nullCount > 0 {
		if c.nulls[n] {
			c.nullCount--
		}
		c.nulls = c.nulls[:n]
	}
	c.raw[n] = ""
	c.raw = c.raw[:n]
	if c.canInt {
		c.ints = c.ints[:n]
	}
	if c.canTime {
		c.times = c.times[:n]
	}
}

// finish returns the column's values for the batch, typed, and resets c.
// The returned slices are c's no longer; capHint sizes their replacements.
func (c *column) finish(capHint int) wire.Column {
	out := wire.Column{Name: c.name}
	n := len(c.raw)
	if c.nullCount > 0 {
		out.Nulls = c.nulls
		c.nulls = make([]bool, 0, capHint)
	}
	switch {
	case c.nullCount == n:
		out.Type = wire.TypeString
		out.Strings = make([]string, n)
	case c.canInt:
		out.Type = wire.TypeInt
		out.Ints = c.ints
		c.ints = make([]int64, 0, capHint)
	case c.canFloat && c.finishFloat(&out):
	case c.canTime:
		out.Type = wire.TypeTimestamp
		out.Ints = c.times
		c.times = make([]int64, 0, capHint)
	case c.canBool:
		out.Type = wire.TypeBool
		out.Bools = make([]bool, n)
		for i, s := range c.raw {
			out.Bools[i] = len(s) == 4 // "true" in any case; "false" has 5
		}
	default:
		out.Type = wire.TypeString
		out.Strings = c.raw
		c.raw = make([]string, 0, capHint)
	}
	switch {
	case c.nullCount == n: // no value: no type to remember
	case c.floor == "":
		c.floor = out.Type
	default:
		c.floor, _ = chunk.Widen(c.floor, out.Type)
	}
	c.reset(c.name)
	return out
}

// finishFloat parses the column as floats into out, or reports false when a
// value is out of range or would not print back as the same number
// ("12345678901234567890"), so that the column keeps its text as strings.
func (c *column) finishFloat(out *wire.Column) bool {
	fs := make([]float64, len(c.raw))
	for i, s := range c.raw {
		if s == "" {
			continue
		}
		f, ok := dataset.ExactFloat(s)
		if !ok {
			return false // out of range, or more digits than a float64 keeps
		}
		fs[i] = f
	}
	out.Type = wire.TypeFloat
	out.Floats = fs
	return true
}

// parseInt64 parses an optional '-' and one or more decimal digits.
func parseInt64(s string) (int64, bool) {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i = 1
	}
	if i == len(s) {
		return 0, false
	}
	var n uint64
	for j := i; j < len(s); j++ {
		d := s[j] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + uint64(d)
	}
	if len(s)-i > 18 { // may have overflowed
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil
	}
	if i == 1 {
		return -int64(n), true
	}
	return int64(n), true
}

// parseCanonicalInt parses s when it is an int64 written the one way
// strconv.FormatInt writes it: no '+', no leading zeros, no "-0".
func parseCanonicalInt(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	d := s
	if d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || (d[0] == '0' && (len(d) > 1 || len(d) < len(s))) {
		return 0, false
	}
	return parseInt64(s)
}

// isFloatText reports whether s is a decimal number strconv.ParseFloat
// reads: -?digits[.digits][(e|E)[+-]digits], with digits on at least one
// side of the point. Unlike ParseFloat it refuses a leading '+', leading
// zeros ("007", "00.5"), hex, underscores, infinities and NaN, which are
// more likely codes than numbers.
func isFloatText(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intDigits := i - start
	if intDigits > 1 && s[start] == '0' {
		return false
	}
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		fracDigits = i - fs
	}
	if intDigits+fracDigits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		es := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == es {
			return false
		}
	}
	return i == len(s)
}

// isBoolText reports whether s is "true" or "false" in any case.
func isBoolText(s string) bool {
	switch len(s) {
	case 4:
		return strings.EqualFold(s, "true")
	case 5:
		return strings.EqualFold(s, "false")
	}
	return false
}
