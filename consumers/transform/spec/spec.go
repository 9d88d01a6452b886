package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Spec is a dataset's declarative transform: steps applied in order to every
// record batch of every source of the dataset, before the batch is
// published. docs/transforms.md describes every step with examples.
//
// A step that names a column fails the source permanently when the column
// does not exist, unless the source had it in an earlier batch (JSON rows may
// lack a key) or Optional lists it: such a column is null where absent.
type Spec struct {
	// Optional lists columns a source may lack.
	Optional []string `json:"optional,omitempty" yaml:"optional,omitempty"`
	// Steps run in order.
	Steps []Step `json:"steps" yaml:"steps"`
}

// Step is one operation: exactly one of its fields is set.
type Step struct {
	// Select keeps only these columns, in this order.
	Select []string `json:"select,omitempty" yaml:"select,omitempty"`
	// Drop removes these columns.
	Drop []string `json:"drop,omitempty" yaml:"drop,omitempty"`
	// Rename renames columns, old name to new, all at once.
	Rename map[string]string `json:"rename,omitempty" yaml:"rename,omitempty"`
	// Cast converts columns to a type: int, float, bool, string or
	// timestamp. A value that does not convert becomes null.
	Cast map[string]wire.Type `json:"cast,omitempty" yaml:"cast,omitempty"`
	// Lower lower-cases string columns.
	Lower []string `json:"lower,omitempty" yaml:"lower,omitempty"`
	// Trim removes leading and trailing white space from string columns and
	// collapses every inner run of it to one space.
	Trim []string `json:"trim,omitempty" yaml:"trim,omitempty"`
	// DropEmpty drops the rows where any of these columns is null or an
	// empty string; "*" means every column.
	DropEmpty []string `json:"drop_empty,omitempty" yaml:"drop_empty,omitempty"`
	// Filter keeps the rows whose value passes a comparison.
	Filter *Filter `json:"filter,omitempty" yaml:"filter,omitempty"`
	// Log1p derives ln(1+x) of a number column, as float.
	Log1p *Derive `json:"log1p,omitempty" yaml:"log1p,omitempty"`
	// Tokens derives the number of white-space separated tokens, as int.
	Tokens *Derive `json:"tokens,omitempty" yaml:"tokens,omitempty"`
	// Length derives the length in characters, as int.
	Length *Derive `json:"length,omitempty" yaml:"length,omitempty"`
	// HashBucket derives a bucket number in [0, Buckets), as int.
	HashBucket *HashBucket `json:"hash_bucket,omitempty" yaml:"hash_bucket,omitempty"`
	// OneHot derives one 0/1 int column per category.
	OneHot *OneHot `json:"one_hot,omitempty" yaml:"one_hot,omitempty"`
	// Dedupe drops the rows whose values of these columns an earlier row
	// of the same source had.
	Dedupe []string `json:"dedupe,omitempty" yaml:"dedupe,omitempty"`
	// Func calls the Go function Config.Funcs registers under this name.
	Func string `json:"func,omitempty" yaml:"func,omitempty"`
}

// Filter keeps the rows where Column compares to Value (or, for "in" and
// "not_in", to one of Values) as Op says: "==", "!=", "<", "<=", ">", ">=",
// "in" or "not_in". A null never passes.
type Filter struct {
	Column string `json:"column" yaml:"column"`
	Op     string `json:"op" yaml:"op"`
	Value  any    `json:"value,omitempty" yaml:"value,omitempty"`
	Values []any  `json:"values,omitempty" yaml:"values,omitempty"`
}

// Derive names the column a feature is computed from and the column it is
// stored in; As defaults to "<column>_<step>" (log1p, tokens, len).
type Derive struct {
	Column string `json:"column" yaml:"column"`
	As     string `json:"as,omitempty" yaml:"as,omitempty"`
}

// HashBucket derives FNV-1a 64 of the value's text modulo Buckets; As
// defaults to "<column>_bucket".
type HashBucket struct {
	Column  string `json:"column" yaml:"column"`
	Buckets int    `json:"buckets" yaml:"buckets"`
	As      string `json:"as,omitempty" yaml:"as,omitempty"`
}

// OneHot derives, for each of Values, an int column "<Prefix><value>" that
// is 1 where the column's text equals the value and 0 elsewhere, nulls
// included. Prefix defaults to "<column>_".
type OneHot struct {
	Column string   `json:"column" yaml:"column"`
	Values []string `json:"values" yaml:"values"`
	Prefix string   `json:"prefix,omitempty" yaml:"prefix,omitempty"`
}

// maxOneHot bounds the categories of a one-hot step.
const maxOneHot = 256

// LoadSpec reads the spec in the file at path: YAML when its name ends in
// .yaml or .yml, JSON when it ends in .json. It checks the spec and fails
// with the file name and what is wrong.
func LoadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	var s *Spec
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		s, err = ParseSpec(data, "yaml")
	case ".json":
		s, err = ParseSpec(data, "json")
	default:
		return nil, fmt.Errorf("load spec %s: want a .yaml, .yml or .json file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", path, err)
	}
	return s, nil
}

// LoadSpecs reads the specs at path for Config.Specs. A folder holds one
// spec per dataset, <dataset>.yaml, .yml or .json; other files are ignored.
// A file is the spec of every dataset, under the key "*".
func LoadSpecs(path string) (map[string]*Spec, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	if !fi.IsDir() {
		s, err := LoadSpec(path)
		if err != nil {
			return nil, err
		}
		return map[string]*Spec{"*": s}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("load specs: %w", err)
	}
	specs := map[string]*Spec{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		switch strings.ToLower(ext) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		if e.IsDir() {
			continue
		}
		dataset := strings.TrimSuffix(e.Name(), ext)
		if !wire.ValidDataset(dataset) {
			return nil, fmt.Errorf("load specs: %s: %q is not a dataset name", filepath.Join(path, e.Name()), dataset)
		}
		if _, dup := specs[dataset]; dup {
			return nil, fmt.Errorf("load specs: %s: a second spec for dataset %s", filepath.Join(path, e.Name()), dataset)
		}
		s, err := LoadSpec(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		specs[dataset] = s
	}
	return specs, nil
}

// ParseSpec decodes a spec written in format, "yaml" or "json", refusing
// unknown keys, and checks it.
func ParseSpec(data []byte, format string) (*Spec, error) {
	var s Spec
	switch format {
	case "yaml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil && err != io.EOF {
			return nil, err
		}
	case "json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(&s); err != nil {
			return nil, err
		}
		if dec.More() {
			return nil, errors.New("data after the spec")
		}
	default:
		return nil, fmt.Errorf("spec format %q: want yaml or json", format)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate reports what is wrong with s: a step with no or several
// operations, an empty column name, an unknown type or comparison, a
// comparison without a value, a bucket count or category list out of range.
// It can not know the columns of the data, nor which funcs are registered.
func (s *Spec) Validate() error {
	_, err := Compile(s, nil)
	return err
}

// op names the operation of a step, as in the spec.
func (st *Step) op() (string, error) {
	var ops []string
	add := func(set bool, name string) {
		if set {
			ops = append(ops, name)
		}
	}
	add(st.Select != nil, "select")
	add(st.Drop != nil, "drop")
	add(st.Rename != nil, "rename")
	add(st.Cast != nil, "cast")
	add(st.Lower != nil, "lower")
	add(st.Trim != nil, "trim")
	add(st.DropEmpty != nil, "drop_empty")
	add(st.Filter != nil, "filter")
	add(st.Log1p != nil, "log1p")
	add(st.Tokens != nil, "tokens")
	add(st.Length != nil, "length")
	add(st.HashBucket != nil, "hash_bucket")
	add(st.OneHot != nil, "one_hot")
	add(st.Dedupe != nil, "dedupe")
	add(st.Func != "", "func")
	switch len(ops) {
	case 0:
		return "", errors.New("no operation")
	case 1:
		return ops[0], nil
	default:
		return "", fmt.Errorf("several operations (%s): one per step", strings.Join(ops, ", "))
	}
}

// Compile checks s and turns it into a Program; funcs, when not nil, must
// hold every func a step calls.
func Compile(s *Spec, funcs map[string]Func) (*Program, error) {
	if s == nil {
		return nil, errors.New("no spec")
	}
	prog := &Program{optional: map[string]bool{}}
	for _, name := range s.Optional {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("optional: %w", err)
		}
		prog.optional[name] = true
	}
	for i := range s.Steps {
		st := &s.Steps[i]
		op, err := st.op()
		if err == nil {
			var o operation
			o, err = compileStep(st, op, funcs)
			if err == nil {
				prog.steps = append(prog.steps, step{index: i + 1, op: op, run: o})
			}
		}
		if err != nil {
			if op != "" {
				return nil, fmt.Errorf("step %d (%s): %w", i+1, op, err)
			}
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
	}
	return prog, nil
}

func compileStep(st *Step, op string, funcs map[string]Func) (operation, error) {
	switch op {
	case "select":
		cols, err := columnList(st.Select, false)
		return &selectOp{cols: cols}, err
	case "drop":
		cols, err := columnList(st.Drop, false)
		return &dropOp{cols: cols}, err
	case "rename":
		if len(st.Rename) == 0 {
			return nil, errors.New("no columns")
		}
		o := &renameOp{}
		to := map[string]bool{}
		for _, from := range slices.Sorted(mapKeys(st.Rename)) {
			name := st.Rename[from]
			if err := checkName(from); err != nil {
				return nil, err
			}
			if err := checkName(name); err != nil {
				return nil, err
			}
			if to[name] {
				return nil, fmt.Errorf("two columns renamed to %q", name)
			}
			to[name] = true
			o.from = append(o.from, from)
			o.to = append(o.to, name)
		}
		return o, nil
	case "cast":
		if len(st.Cast) == 0 {
			return nil, errors.New("no columns")
		}
		o := &castOp{}
		for _, name := range slices.Sorted(mapKeys(st.Cast)) {
			t := wire.Type(strings.ToLower(string(st.Cast[name])))
			switch t {
			case wire.TypeInt, wire.TypeFloat, wire.TypeBool, wire.TypeString, wire.TypeTimestamp:
			default:
				return nil, fmt.Errorf("column %q: unknown type %q: want int, float, bool, string or timestamp", name, st.Cast[name])
			}
			if err := checkName(name); err != nil {
				return nil, err
			}
			o.cols = append(o.cols, name)
			o.types = append(o.types, t)
		}
		return o, nil
	case "lower":
		cols, err := columnList(st.Lower, false)
		return &stringOp{cols: cols, fn: lowerColumn}, err
	case "trim":
		cols, err := columnList(st.Trim, false)
		return &stringOp{cols: cols, fn: trimColumn}, err
	case "drop_empty":
		cols, err := columnList(st.DropEmpty, true)
		return &dropEmptyOp{cols: cols, all: len(cols) == 1 && cols[0] == "*"}, err
	case "filter":
		return compileFilter(st.Filter)
	case "log1p":
		return compileDerive(st.Log1p, "log1p", deriveLog1p)
	case "tokens":
		return compileDerive(st.Tokens, "tokens", deriveTokens)
	case "length":
		return compileDerive(st.Length, "len", deriveLength)
	case "hash_bucket":
		h := st.HashBucket
		if err := checkColumn(h.Column, h.As); err != nil {
			return nil, err
		}
		if h.Buckets < 1 || h.Buckets > math.MaxInt32 {
			return nil, fmt.Errorf("buckets %d: want 1 to %d", h.Buckets, math.MaxInt32)
		}
		as := h.As
		if as == "" {
			as = h.Column + "_bucket"
		}
		return &hashBucketOp{col: h.Column, as: as, n: uint64(h.Buckets)}, nil
	case "one_hot":
		o := st.OneHot
		if err := checkColumn(o.Column, o.Prefix); err != nil {
			return nil, err
		}
		if len(o.Values) == 0 || len(o.Values) > maxOneHot {
			return nil, fmt.Errorf("%d values: want 1 to %d", len(o.Values), maxOneHot)
		}
		prefix := o.Prefix
		if prefix == "" {
			prefix = o.Column + "_"
		}
		op := &oneHotOp{col: o.Column, index: map[string]int{}}
		for i, v := range o.Values {
			if err := checkName(prefix + v); err != nil {
				return nil, fmt.Errorf("value %q: %w", v, err)
			}
			if _, dup := op.index[v]; dup {
				return nil, fmt.Errorf("value %q listed twice", v)
			}
			op.index[v] = i
			op.names = append(op.names, prefix+v)
		}
		return op, nil
	case "dedupe":
		cols, err := columnList(st.Dedupe, false)
		return &dedupeOp{cols: cols}, err
	case "func":
		if funcs == nil {
			return &funcOp{name: st.Func}, nil // checked again by New
		}
		fn, ok := funcs[st.Func]
		if !ok || fn == nil {
			return nil, fmt.Errorf("no func %q registered in Config.Funcs", st.Func)
		}
		return &funcOp{name: st.Func, fn: fn}, nil
	}
	return nil, fmt.Errorf("unknown operation %q", op)
}

// checkName reports a column name that is empty or not valid UTF-8.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty column name")
	case !utf8.ValidString(name):
		return fmt.Errorf("column name %q is not valid UTF-8", name)
	}
	return nil
}

// checkColumn checks the column a step reads and the name of the one it
// writes, which may be empty for the default.
func checkColumn(column, as string) error {
	if column == "" {
		return errors.New("no column")
	}
	if err := checkName(column); err != nil {
		return err
	}
	if as != "" {
		return checkName(as)
	}
	return nil
}

// columnList checks a list of column names: not empty, no empty or
// repeated name, and "*" alone when star is allowed.
func columnList(cols []string, star bool) ([]string, error) {
	if len(cols) == 0 {
		return nil, errors.New("no columns")
	}
	seen := map[string]bool{}
	for _, c := range cols {
		switch {
		case checkName(c) != nil:
			return nil, checkName(c)
		case c == "*" && star && len(cols) > 1:
			return nil, errors.New(`"*" stands alone`)
		case seen[c]:
			return nil, fmt.Errorf("column %q listed twice", c)
		}
		seen[c] = true
	}
	return cols, nil
}

func compileDerive(d *Derive, suffix string, fn deriveFunc) (operation, error) {
	if err := checkColumn(d.Column, d.As); err != nil {
		return nil, err
	}
	as := d.As
	if as == "" {
		as = d.Column + "_" + suffix
	}
	return &deriveOp{col: d.Column, as: as, fn: fn}, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
