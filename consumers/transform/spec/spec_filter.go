package spec

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// literal is a filter value: a number, a string, a bool or a time.
type literal struct {
	kind  literalKind
	num   float64
	i     int64
	isInt bool // num is an integer that fits int64 exactly: i
	str   string
	b     bool
	us    int64 // microseconds, when kind is litTime or the string is a timestamp
	isTS  bool  // str parses as a timestamp
}

type literalKind uint8

const (
	litNumber literalKind = iota + 1
	litString
	litBool
	litTime
)

// newLiteral normalises a value decoded from YAML or JSON.
func newLiteral(v any) (literal, error) {
	switch x := v.(type) {
	case nil:
		return literal{}, errors.New("no value (null never passes a filter: use drop_empty)")
	case bool:
		return literal{kind: litBool, b: x}, nil
	case int:
		return literal{kind: litNumber, num: float64(x), i: int64(x), isInt: true}, nil
	case int64:
		return literal{kind: litNumber, num: float64(x), i: x, isInt: true}, nil
	case uint64:
		if x > math.MaxInt64 {
			return literal{kind: litNumber, num: float64(x)}, nil
		}
		return literal{kind: litNumber, num: float64(x), i: int64(x), isInt: true}, nil
	case float64:
		return numberLiteral(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return literal{kind: litNumber, num: float64(i), i: i, isInt: true}, nil
		}
		f, err := x.Float64()
		if err != nil {
			return literal{}, fmt.Errorf("number %s: %w", x, err)
		}
		return numberLiteral(f), nil
	case string:
		l := literal{kind: litString, str: x}
		l.us, l.isTS = parse.Timestamp(x)
		return l, nil
	case time.Time:
		return literal{kind: litTime, us: x.UnixMicro(), str: x.UTC().Format(time.RFC3339Nano), isTS: true}, nil
	}
	return literal{}, fmt.Errorf("value %v: want a number, a string or a bool", v)
}

func numberLiteral(f float64) literal {
	l := literal{kind: litNumber, num: f}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		l.i, l.isInt = int64(f), true
	}
	return l
}

func compileFilter(f *Filter) (operation, error) {
	if err := checkColumn(f.Column, ""); err != nil {
		return nil, err
	}
	op := &filterOp{col: f.Column, cmp: f.Op}
	switch f.Op {
	case "==", "!=", "<", "<=", ">", ">=":
		if f.Values != nil {
			return nil, fmt.Errorf("op %q takes value, not values", f.Op)
		}
		l, err := newLiteral(f.Value)
		if err != nil {
			return nil, err
		}
		if l.kind == litBool && f.Op != "==" && f.Op != "!=" {
			return nil, fmt.Errorf("op %q does not order booleans", f.Op)
		}
		op.value = l
	case "in", "not_in":
		if f.Value != nil {
			return nil, fmt.Errorf("op %q takes values, not value", f.Op)
		}
		if len(f.Values) == 0 {
			return nil, fmt.Errorf("op %q: no values", f.Op)
		}
		for _, v := range f.Values {
			l, err := newLiteral(v)
			if err != nil {
				return nil, err
			}
			op.values = append(op.values, l)
		}
	case "":
		return nil, errors.New("no op: want ==, !=, <, <=, >, >=, in or not_in")
	default:
		return nil, fmt.Errorf("unknown op %q: want ==, !=, <, <=, >, >=, in or not_in", f.Op)
	}
	return op, nil
}

type filterOp struct {
	col    string
	cmp    string
	value  literal
	values []literal
}

func (o *filterOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	i, err := r.column(b, o.col, true)
	if err != nil {
		return nil, err
	}
	c := &b.Columns[i]
	keep := make([]bool, b.Rows)
	switch o.cmp {
	case "in", "not_in":
		for k := range o.values {
			if err := comparable(c, &o.values[k]); err != nil {
				return nil, err
			}
		}
		want := o.cmp == "in"
		for row := range b.Rows {
			if c.IsNull(row) {
				continue
			}
			found := false
			for k := range o.values {
				if d, ok := compareRow(c, row, &o.values[k]); ok && d == 0 {
					found = true
					break
				}
			}
			keep[row] = found == want
		}
	default:
		l := &o.value
		if err := comparable(c, l); err != nil {
			return nil, err
		}
		pass := passes(o.cmp)
		switch {
		case c.Type == wire.TypeInt && l.kind == litNumber && l.isInt:
			for row, v := range c.Ints {
				keep[row] = pass(cmp.Compare(v, l.i))
			}
		case c.Type == wire.TypeFloat && l.kind == litNumber:
			for row, v := range c.Floats {
				keep[row] = !math.IsNaN(v) && pass(cmp.Compare(v, l.num))
			}
		case c.Type == wire.TypeString && l.kind == litString:
			for row, v := range c.Strings {
				keep[row] = pass(strings.Compare(v, l.str))
			}
		default:
			for row := range b.Rows {
				d, ok := compareRow(c, row, l)
				keep[row] = ok && pass(d)
			}
		}
		for row := range c.Nulls {
			if c.Nulls[row] {
				keep[row] = false
			}
		}
	}
	return compact(b, keep), nil
}

// passes returns whether a comparison result d passes op.
func passes(op string) func(d int) bool {
	switch op {
	case "==":
		return func(d int) bool { return d == 0 }
	case "!=":
		return func(d int) bool { return d != 0 }
	case "<":
		return func(d int) bool { return d < 0 }
	case "<=":
		return func(d int) bool { return d <= 0 }
	case ">":
		return func(d int) bool { return d > 0 }
	default:
		return func(d int) bool { return d >= 0 }
	}
}

// comparable reports a column whose values can not be compared with l.
func comparable(c *wire.Column, l *literal) error {
	ok := true
	switch c.Type {
	case wire.TypeInt, wire.TypeFloat:
		ok = l.kind == litNumber || (l.kind == litString && isNumberText(l.str))
	case wire.TypeBool:
		if l.kind == litString {
			_, ok = parseBoolText(l.str)
		} else {
			ok = l.kind == litBool
		}
	case wire.TypeTimestamp:
		ok = l.isTS
	}
	if !ok {
		return fmt.Errorf("column %q holds %s values in this batch, which do not compare with %s", c.Name, c.Type, l.describe())
	}
	return nil
}

func (l *literal) describe() string {
	switch l.kind {
	case litNumber:
		return "the number " + strconv.FormatFloat(l.num, 'g', -1, 64)
	case litBool:
		return "the bool " + strconv.FormatBool(l.b)
	default:
		return strconv.Quote(l.str)
	}
}

func isNumberText(s string) bool {
	_, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return err == nil
}

// compareRow compares row of c, not null, with l, and reports false when
// they do not compare: a string that is not a number compared with one.
func compareRow(c *wire.Column, row int, l *literal) (int, bool) {
	switch c.Type {
	case wire.TypeInt:
		v := c.Ints[row]
		if l.kind == litNumber && l.isInt {
			return cmp.Compare(v, l.i), true
		}
		n, ok := l.number()
		return cmp.Compare(float64(v), n), ok
	case wire.TypeFloat:
		v := c.Floats[row]
		n, ok := l.number()
		return cmp.Compare(v, n), ok && !math.IsNaN(v)
	case wire.TypeBool:
		v := c.Bools[row]
		b, ok := l.boolean()
		if !ok {
			return 0, false
		}
		return cmp.Compare(boolInt(v), boolInt(b)), true
	case wire.TypeTimestamp:
		return cmp.Compare(c.Ints[row], l.us), l.isTS
	default:
		s := c.Strings[row]
		switch l.kind {
		case litString:
			return strings.Compare(s, l.str), true
		case litNumber:
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			return cmp.Compare(f, l.num), err == nil && !math.IsNaN(f)
		case litBool:
			b, ok := parseBoolText(s)
			return cmp.Compare(boolInt(b), boolInt(l.b)), ok
		default: // litTime
			us, ok := parse.Timestamp(strings.TrimSpace(s))
			return cmp.Compare(us, l.us), ok
		}
	}
}

// number returns l as a number: a number, or a string that holds one.
func (l *literal) number() (float64, bool) {
	switch l.kind {
	case litNumber:
		return l.num, true
	case litString:
		f, err := strconv.ParseFloat(strings.TrimSpace(l.str), 64)
		return f, err == nil
	}
	return 0, false
}

func (l *literal) boolean() (bool, bool) {
	switch l.kind {
	case litBool:
		return l.b, true
	case litString:
		return parseBoolText(l.str)
	}
	return false, false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
