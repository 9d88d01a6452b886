package spec

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Func is a transform written in Go, for programs that use trainfeed as a
// library; a spec step {func: name} calls the Func that Config.Funcs
// registers under name. It receives one batch of a source and returns the
// batch to publish: the same batch changed in place, a new one, or one
// without rows. Every column of the result must hold Rows values, and the
// column names must be unique.
//
// Funcs run on the stage's workers, for many sources at once, so a Func
// must be safe for concurrent use. It must be deterministic: a source that is
// delivered again is transformed again, and its batches must come out the
// same. An error fails the source permanently.
type Func func(ctx context.Context, b *parse.Batch) (*parse.Batch, error)

// StepError reports a spec step that failed on a batch: the data does not
// fit the spec (a column it names is missing, a type it can not work on),
// so the source fails permanently.
type StepError struct {
	// Step is the 1-based position of the step in the spec; Op its
	// operation.
	Step int
	Op   string
	Err  error
}

// Error returns "transform step <n> (<op>): <err>".
func (e *StepError) Error() string {
	return fmt.Sprintf("transform step %d (%s): %s", e.Step, e.Op, e.Err)
}

// Unwrap returns e.Err.
func (e *StepError) Unwrap() error { return e.Err }

// Program is a compiled Spec: Compile makes one, NewRun runs it on a
// source's batches.
type Program struct {
	optional map[string]bool
	steps    []step
}

type step struct {
	index int
	op    string
	run   operation
}

// operation is a compiled step. apply may change b in place and return it,
// or return another batch.
type operation interface {
	apply(r *Run, b *parse.Batch) (*parse.Batch, error)
}

// Run is a Program's state for one source: a dedupe remembers the keys
// it has seen, and a column the source had stays, as nulls, where a
// later row lacks it.
type Run struct {
	prog *Program
	ctx  context.Context
	// seen holds the columns the source's batches had before the steps
	// ran: a JSON row may lack a key other rows have.
	seen   map[string]bool
	dedupe map[*dedupeOp]*hashSet
	buf    []byte
}

// NewRun starts a run of p on one source's batches.
func (p *Program) NewRun(ctx context.Context) *Run {
	return &Run{prog: p, ctx: ctx, seen: map[string]bool{}, dedupe: map[*dedupeOp]*hashSet{}}
}

// Apply runs the steps on b, which it may change; a failing step, and
// a result with rows but no column, is a *StepError.
func (r *Run) Apply(b *parse.Batch) (*parse.Batch, error) {
	for i := range b.Columns {
		r.seen[b.Columns[i].Name] = true
	}
	for _, st := range r.prog.steps {
		nb, err := st.run.apply(r, b)
		if err != nil {
			return nil, &StepError{Step: st.index, Op: st.op, Err: err}
		}
		b = nb
	}
	if b.Rows > 0 && len(b.Columns) == 0 {
		return nil, &StepError{Step: len(r.prog.steps), Op: "end", Err: errors.New("the spec leaves rows without a column")}
	}
	return b, nil
}

// errNoColumn says that the batch lacks a column a step names.
type errNoColumn struct {
	name string
	have []string
}

func (e *errNoColumn) Error() string {
	const most = 20
	have := e.have
	more := ""
	if len(have) > most {
		have, more = have[:most], fmt.Sprintf(" and %d more", len(e.have)-most)
	}
	return fmt.Sprintf("no column %q (the data has %s%s; list a column a source may lack under optional)",
		e.name, strings.Join(quoted(have), ", "), more)
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// find returns the position of column name in b, or -1.
func find(b *parse.Batch, name string) int {
	for i := range b.Columns {
		if b.Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// column returns the position of column name in b. A column the batch lacks
// but the source has had, or the spec lists as optional, is added as nulls
// when add is set, or reported as -1; any other missing column is an error.
func (r *Run) column(b *parse.Batch, name string, add bool) (int, error) {
	if i := find(b, name); i >= 0 {
		return i, nil
	}
	if !r.seen[name] && !r.prog.optional[name] {
		have := make([]string, len(b.Columns))
		for i := range b.Columns {
			have[i] = b.Columns[i].Name
		}
		return -1, &errNoColumn{name: name, have: have}
	}
	if !add {
		return -1, nil
	}
	b.Columns = append(b.Columns, nullColumn(name, b.Rows))
	return len(b.Columns) - 1, nil
}

// nullColumn returns a string column of rows nulls.
func nullColumn(name string, rows int) wire.Column {
	nulls := make([]bool, rows)
	for i := range nulls {
		nulls[i] = true
	}
	return wire.Column{Name: name, Type: wire.TypeString, Strings: make([]string, rows), Nulls: nulls}
}

// put stores c in b, replacing the column of the same name or appending.
func put(b *parse.Batch, c wire.Column) {
	if i := find(b, c.Name); i >= 0 {
		b.Columns[i] = c
		return
	}
	b.Columns = append(b.Columns, c)
}

type selectOp struct{ cols []string }

func (o *selectOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	out := make([]wire.Column, 0, len(o.cols))
	for _, name := range o.cols {
		i, err := r.column(b, name, true)
		if err != nil {
			return nil, err
		}
		out = append(out, b.Columns[i])
	}
	b.Columns = out
	return b, nil
}

type dropOp struct{ cols []string }

func (o *dropOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	for _, name := range o.cols {
		i, err := r.column(b, name, false)
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			b.Columns = slices.Delete(b.Columns, i, i+1)
		}
	}
	return b, nil
}

type renameOp struct{ from, to []string }

func (o *renameOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	idx := make([]int, len(o.from))
	for k, name := range o.from {
		i, err := r.column(b, name, true)
		if err != nil {
			return nil, err
		}
		idx[k] = i
	}
	for k, i := range idx {
		b.Columns[i].Name = o.to[k]
	}
	seen := make(map[string]bool, len(b.Columns))
	for i := range b.Columns {
		name := b.Columns[i].Name
		if seen[name] {
			return nil, fmt.Errorf("two columns named %q after renaming", name)
		}
		seen[name] = true
	}
	return b, nil
}

type castOp struct {
	cols  []string
	types []wire.Type
}

func (o *castOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	for k, name := range o.cols {
		i, err := r.column(b, name, true)
		if err != nil {
			return nil, err
		}
		b.Columns[i] = castColumn(&b.Columns[i], o.types[k], b.Rows)
	}
	return b, nil
}

type stringOp struct {
	cols []string
	fn   func(*wire.Column)
}

func (o *stringOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	for _, name := range o.cols {
		i, err := r.column(b, name, false)
		if err != nil {
			return nil, err
		}
		if i >= 0 && b.Columns[i].Type == wire.TypeString {
			o.fn(&b.Columns[i])
		}
	}
	return b, nil
}

type dropEmptyOp struct {
	cols []string
	all  bool
}

func (o *dropEmptyOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	var cols []*wire.Column
	if o.all {
		for i := range b.Columns {
			cols = append(cols, &b.Columns[i])
		}
	} else {
		for _, name := range o.cols {
			i, err := r.column(b, name, true)
			if err != nil {
				return nil, err
			}
			cols = append(cols, &b.Columns[i])
		}
	}
	keep := newMask(b.Rows)
	for _, c := range cols {
		for i := range c.Nulls {
			if c.Nulls[i] {
				keep[i] = false
			}
		}
		if c.Type == wire.TypeString {
			for i, s := range c.Strings {
				if s == "" {
					keep[i] = false
				}
			}
		}
	}
	return compact(b, keep), nil
}

type dedupeOp struct{ cols []string }

func (o *dedupeOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	cols := make([]*wire.Column, len(o.cols))
	for k, name := range o.cols {
		i, err := r.column(b, name, true)
		if err != nil {
			return nil, err
		}
		cols[k] = &b.Columns[i]
	}
	set := r.dedupe[o]
	if set == nil {
		set = &hashSet{}
		r.dedupe[o] = set
	}
	keep := newMask(b.Rows)
	for row := range b.Rows {
		h := uint64(fnvOffset)
		for _, c := range cols {
			if c.IsNull(row) {
				h = fnvByte(h, 0)
				continue
			}
			r.buf = appendText(r.buf[:0], c, row)
			h = fnvByte(h, 1)
			h = fnvUvarint(h, uint64(len(r.buf)))
			h = fnvBytes(h, r.buf)
		}
		keep[row] = set.add(h)
	}
	return compact(b, keep), nil
}

type funcOp struct {
	name string
	fn   Func
}

func (o *funcOp) apply(r *Run, b *parse.Batch) (*parse.Batch, error) {
	nb, err := o.fn(r.ctx, b)
	if err != nil {
		return nil, fmt.Errorf("func %s: %w", o.name, err)
	}
	if nb == nil {
		return nil, fmt.Errorf("func %s: returned no batch", o.name)
	}
	if err := checkBatch(nb); err != nil {
		return nil, fmt.Errorf("func %s: %w", o.name, err)
	}
	return nb, nil
}

// checkBatch reports a batch whose columns do not agree with its row count,
// or whose column names repeat.
func checkBatch(b *parse.Batch) error {
	if b.Rows < 0 {
		return fmt.Errorf("negative row count %d", b.Rows)
	}
	seen := make(map[string]bool, len(b.Columns))
	for i := range b.Columns {
		c := &b.Columns[i]
		if seen[c.Name] {
			return fmt.Errorf("column %q appears twice", c.Name)
		}
		seen[c.Name] = true
		switch c.Type {
		case wire.TypeInt, wire.TypeFloat, wire.TypeBool, wire.TypeString, wire.TypeTimestamp:
		default:
			return fmt.Errorf("column %q: unknown type %q", c.Name, c.Type)
		}
		if c.Len() != b.Rows {
			return fmt.Errorf("column %q holds %d values for %d rows", c.Name, c.Len(), b.Rows)
		}
		if len(c.Nulls) != 0 && len(c.Nulls) != b.Rows {
			return fmt.Errorf("column %q has %d null flags for %d rows", c.Name, len(c.Nulls), b.Rows)
		}
	}
	return nil
}

// newMask returns rows true values.
func newMask(rows int) []bool {
	keep := make([]bool, rows)
	for i := range keep {
		keep[i] = true
	}
	return keep
}

// compact keeps the rows of b that keep marks, in place.
func compact(b *parse.Batch, keep []bool) *parse.Batch {
	n := 0
	for _, k := range keep {
		if k {
			n++
		}
	}
	if n == b.Rows {
		return b
	}
	for ci := range b.Columns {
		c := &b.Columns[ci]
		switch c.Type {
		case wire.TypeInt, wire.TypeTimestamp:
			c.Ints = keepRows(c.Ints, keep)
		case wire.TypeFloat:
			c.Floats = keepRows(c.Floats, keep)
		case wire.TypeBool:
			c.Bools = keepRows(c.Bools, keep)
		default:
			c.Strings = keepRows(c.Strings, keep)
		}
		if c.Nulls != nil {
			c.Nulls = keepRows(c.Nulls, keep)
			if !slices.Contains(c.Nulls, true) {
				c.Nulls = nil
			}
		}
	}
	b.Rows = n
	return b
}

// keepRows moves the values keep marks to the front of vs and returns them.
func keepRows[T any](vs []T, keep []bool) []T {
	j := 0
	for i, k := range keep {
		if k {
			vs[j] = vs[i]
			j++
		}
	}
	clear(vs[j:])
	return vs[:j]
}

// hashSet is a set of 64-bit hashes, open addressing with linear probing,
// 8 bytes a slot, at most half full.
type hashSet struct {
	slots []uint64
	shift uint // 64 - log2(len(slots))
	n     int
	zero  bool // 0 marks a free slot; the hash 0 is noted here
}

// slot returns the home slot of h: the top bits of h times the golden
// ratio, which depend on all of h (the low bits of FNV do not).
func (s *hashSet) slot(h uint64) uint64 { return (h * 0x9E3779B97F4A7C15) >> s.shift }

// add adds h and reports whether it was new.
func (s *hashSet) add(h uint64) bool {
	if h == 0 {
		was := s.zero
		s.zero = true
		return !was
	}
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := s.slot(h); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			s.n++
			return true
		case h:
			return false
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	size := max(1024, 2*len(old))
	s.slots = make([]uint64, size)
	s.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		i := s.slot(h)
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = h
	}
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func fnvUvarint(h uint64, v uint64) uint64 {
	for v >= 0x80 {
		h = fnvByte(h, byte(v)|0x80)
		v >>= 7
	}
	return fnvByte(h, byte(v))
}
