// Package chunk writes record batches as chunk files, JSON Lines or Parquet,
// under one schema that covers every batch. The combine stage uses it to turn
// the batches it gathered into the files it commits.
package chunk

import (
	"fmt"
	"io"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Format is a chunk file format.
type Format string

// The chunk file formats.
const (
	// JSONL is JSON Lines: one JSON object per record, keys in schema
	// order, null for a null value and for NaN and infinite floats,
	// timestamps as RFC 3339 strings in UTC. Strings come out as valid
	// UTF-8, each invalid byte replaced with U+FFFD.
	JSONL Format = "jsonl"
	// Parquet is Apache Parquet: one optional column per schema field
	// (INT64, DOUBLE, BOOLEAN, BYTE_ARRAY strings, or INT64 timestamps of
	// logical type TIMESTAMP(MICROS, UTC)), in name order, not schema order; zstd compression, version 1 data pages, and a row group
	// per about 64 MiB of input. A Parquet chunk needs at least one field,
	// and every field a name.
	Parquet Format = "parquet"
)

// ParseFormat returns the Format named s, "jsonl" or "parquet".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case JSONL, Parquet:
		return f, nil
	default:
		return "", fmt.Errorf("parse chunk format %q: want %q or %q", s, JSONL, Parquet)
	}
}

// Ext returns the file name extension of f, with its dot: ".jsonl" or
// ".parquet". It returns "" for an unknown format.
func (f Format) Ext() string {
	switch f {
	case JSONL, Parquet:
		return "." + string(f)
	default:
		return ""
	}
}

// Write writes the records of batches, in order, as one chunk file in format
// f to w, and returns how many records it wrote.
//
// schema lists the file's columns; it must name every column of every batch
// that holds a value (MergeSchema of the batches' SchemaOf is such a schema),
// with a type the batch's values convert to. A column a batch lacks, and a
// column that is null in every row of a batch, is null in its records.
// Values convert to a wider schema type: int to float, and any type to
// string with strconv's formatting (floats as strconv.FormatFloat(v, 'g',
// -1, 64), bools as "true" and "false", timestamps as RFC 3339 in UTC with
// up to 6 fractional digits). Write checks every batch against the schema
// before it writes anything.
func Write(w io.Writer, f Format, schema []wire.Field, batches []*wire.RecordBatch) (int64, error) {
	switch f {
	case JSONL, Parquet:
	default:
		return 0, fmt.Errorf("write chunk: unknown format %q", f)
	}
	plans, err := planBatches(schema, batches)
	if err != nil {
		return 0, fmt.Errorf("write %s chunk: %w", f, err)
	}
	var n int64
	if f == JSONL {
		n, err = writeJSONL(w, schema, batches, plans)
	} else {
		n, err = writeParquet(w, schema, batches, plans, rowGroupBytes)
	}
	if err != nil {
		return n, fmt.Errorf("write %s chunk: %w", f, err)
	}
	return n, nil
}

// conv says how a batch column's values become values of a schema column.
type conv uint8

const (
	// convNull: the batch lacks the column, every value is null.
	convNull conv = iota
	// convSame: the batch column has the schema column's type.
	convSame
	// convIntToFloat: int values widen to float.
	convIntToFloat
	// convToString: int, float or bool values are formatted as strings.
	convToString
)

// source is where the values of one schema column come from in one batch.
type source struct {
	col  *wire.Column
	conv conv
}

// planBatches checks schema and every batch against it, and returns for each
// batch the source of each schema column.
func planBatches(schema []wire.Field, batches []*wire.RecordBatch) ([][]source, error) {
	index := make(map[string]int, len(schema))
	for i, f := range schema {
		if !knownType(f.Type) {
			return nil, fmt.Errorf("schema field %q: unknown type %q", f.Name, f.Type)
		}
		if _, dup := index[f.Name]; dup {
			return nil, fmt.Errorf("schema field %q: listed twice", f.Name)
		}
		index[f.Name] = i
	}
	plans := make([][]source, len(batches))
	all := make([]source, len(batches)*len(schema))
	for bi, b := range batches {
		if b == nil {
			return nil, fmt.Errorf("batch %d: nil", bi)
		}
		plan := all[bi*len(schema) : (bi+1)*len(schema) : (bi+1)*len(schema)]
		if err := planBatch(schema, index, b, plan); err != nil {
			return nil, fmt.Errorf("batch %d (%s): %w", bi, b.PartKey(), err)
		}
		plans[bi] = plan
	}
	return plans, nil
}

// planBatch fills plan, one source per schema field, for batch b.
func planBatch(schema []wire.Field, index map[string]int, b *wire.RecordBatch, plan []source) error {
	if b.Rows < 0 {
		return fmt.Errorf("negative row count %d", b.Rows)
	}
	seen := make(map[string]bool, len(b.Columns))
	for ci := range b.Columns {
		c := &b.Columns[ci]
		if seen[c.Name] {
			return fmt.Errorf("column %q: appears twice", c.Name)
		}
		seen[c.Name] = true
		if !knownType(c.Type) {
			return fmt.Errorf("column %q: unknown type %q", c.Name, c.Type)
		}
		if n := c.Len(); n != b.Rows {
			return fmt.Errorf("column %q: %d values for %d rows", c.Name, n, b.Rows)
		}
		i, ok := index[c.Name]
		if c.AllNull(b.Rows) {
			continue // null wherever the schema puts it, whatever its type
		}
		if !ok {
			return fmt.Errorf("column %q: not in schema", c.Name)
		}
		cv, err := convert(c.Type, schema[i].Type)
		if err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
		plan[i] = source{col: c, conv: cv}
	}
	return nil
}

// convert returns how values of type from become values of type to.
func convert(from, to wire.Type) (conv, error) {
	switch {
	case from == to:
		return convSame, nil
	case from == wire.TypeInt && to == wire.TypeFloat:
		return convIntToFloat, nil
	case to == wire.TypeString:
		return convToString, nil
	default:
		return 0, fmt.Errorf("type %s does not convert to schema type %s", from, to)
	}
}

// knownType reports whether t is one of the wire column types.
func knownType(t wire.Type) bool {
	switch t {
	case wire.TypeInt, wire.TypeFloat, wire.TypeBool, wire.TypeString, wire.TypeTimestamp:
		return true
	default:
		return false
	}
}
