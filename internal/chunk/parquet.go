package chunk

import (
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/parquet-go/parquet-go"

	"github.com/trainfeed/trainfeed/internal/wire"
)

const (
	// rowGroupBytes is about how much input, counted as 8 bytes per int or
	// float, 1 per bool or null and the length of each string, goes into
	// one row group before the writer closes it.
	rowGroupBytes = 64 << 20
	// pageBufferSize bounds the uncompressed values of one data page.
	pageBufferSize = 1 << 20
	// parquetBlockRows is how many rows of a batch go to the column
	// writers at a time; a row group closes only between blocks.
	parquetBlockRows = 1024
)

// parquetSchema returns the Parquet schema of fields, a group of optional
// leaves in the fields' order, and the leaf column index of each field.
func parquetSchema(fields []wire.Field) (*parquet.Schema, []int, error) {
	if len(fields) == 0 {
		return nil, nil, errors.New("parquet schema: no fields")
	}
	group := make(parquet.Group, len(fields))
	for _, f := range fields {
		if f.Name == "" {
			return nil, nil, errors.New("parquet schema: field without a name")
		}
		var node parquet.Node
		switch f.Type {
		case wire.TypeInt:
			node = parquet.Int(64)
		case wire.TypeFloat:
			node = parquet.Leaf(parquet.DoubleType)
		case wire.TypeBool:
			node = parquet.Leaf(parquet.BooleanType)
		case wire.TypeString:
			node = parquet.String()
		case wire.TypeTimestamp:
			node = parquet.Timestamp(parquet.Microsecond)
		default:
			return nil, nil, fmt.Errorf("parquet schema: field %q: unknown type %q", f.Name, f.Type)
		}
		group[f.Name] = parquet.Optional(node)
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	schema := parquet.NewSchema("record", orderedGroup{Group: group, names: names})
	cols := make([]int, len(fields))
	for i, f := range fields {
		leaf, ok := schema.Lookup(f.Name)
		if !ok {
			return nil, nil, fmt.Errorf("parquet schema: field %q: no leaf column", f.Name)
		}
		cols[i] = leaf.ColumnIndex
	}
	return schema, cols, nil
}

// orderedGroup is a parquet.Group whose fields keep the order they are
// named in (a parquet.Group sorts them by name), so a chunk's columns come
// in the dataset's schema order, as the source had them.
type orderedGroup struct {
	parquet.Group
	names []string
}

// Fields returns the group's fields in the order of names.
func (g orderedGroup) Fields() []parquet.Field {
	byName := make(map[string]parquet.Field, len(g.names))
	for _, f := range g.Group.Fields() {
		byName[f.Name()] = f
	}
	fields := make([]parquet.Field, len(g.names))
	for i, name := range g.names {
		fields[i] = byName[name]
	}
	return fields
}

// writeParquet writes the batches as a zstd-compressed Parquet file with
// version 1 data pages, closing a row group after about maxGroupBytes of
// input, and returns the number of records written.
//
// The batches are columnar, so it writes a block of rows one column at a
// time, straight to the column writers, rather than assembling rows that
// the writer would take apart again. Every column gets the block's rows
// before the next block starts, so row groups stay aligned.
func writeParquet(w io.Writer, fields []wire.Field, batches []*wire.RecordBatch, plans [][]source, maxGroupBytes int64) (int64, error) {
	schema, cols, err := parquetSchema(fields)
	if err != nil {
		return 0, err
	}
	config, err := parquet.NewWriterConfig(
		schema,
		parquet.Compression(zstdCodec),
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(pageBufferSize),
	)
	if err != nil {
		return 0, fmt.Errorf("configure parquet writer: %w", err)
	}
	pw := parquet.NewWriter(w, config)

	cw := columnWriter{values: make([]parquet.Value, 0, parquetBlockRows)}
	var (
		pending int64 // input bytes in the open row group
		n       int64
	)
	for bi, b := range batches {
		plan := plans[bi]
		for start := 0; start < b.Rows; start += parquetBlockRows {
			end := min(start+parquetBlockRows, b.Rows)
			writers := pw.ColumnWriters()
			for i, src := range plan {
				cw.reset(writers[cols[i]], cols[i])
				size, err := cw.write(src, start, end)
				if err != nil {
					return n, fmt.Errorf("write column %q: %w", fields[i].Name, err)
				}
				pending += size
			}
			n += int64(end - start)
			if pending >= maxGroupBytes {
				if err := pw.Flush(); err != nil {
					return n, fmt.Errorf("flush row group: %w", err)
				}
				pending = 0
			}
		}
	}
	if err := pw.Close(); err != nil {
		return n, fmt.Errorf("close parquet writer: %w", err)
	}
	return n, nil
}

// maxWriteBytes bounds the string bytes handed to a column writer in one
// call: the writer cuts pages only between calls.
const maxWriteBytes = 64 << 10

// columnWriter turns a run of one batch column into Parquet values of one
// optional leaf column and writes them.
type columnWriter struct {
	cw     *parquet.ColumnWriter
	index  int             // leaf column index
	null   parquet.Value   // null at definition level 0 in the column
	values []parquet.Value // values not yet written
	bytes  int             // string bytes in values
	arena  []byte          // strings formatted from other types
}

// reset points w at leaf column index, written by cw.
func (w *columnWriter) reset(cw *parquet.ColumnWriter, index int) {
	w.cw, w.index = cw, index
	w.null = parquet.NullValue()
	w.null.SetColumnIndex(index)
	w.values, w.bytes, w.arena = w.values[:0], 0, w.arena[:0]
}

// str appends b as a present string value and writes the values when they
// hold maxWriteBytes of strings. b must stay unmodified until then.
func (w *columnWriter) str(b []byte) error {
	v := parquet.ByteArrayValue(b)
	v.SetDefinitionLevel(1)
	v.SetColumnIndex(w.index)
	w.values = append(w.values, v)
	if w.bytes += len(b); w.bytes >= maxWriteBytes {
		return w.flush()
	}
	return nil
}

// flush writes the pending values.
func (w *columnWriter) flush() error {
	if len(w.values) > 0 {
		if _, err := w.cw.WriteRowValues(w.values); err != nil {
			return err
		}
	}
	w.values, w.bytes, w.arena = w.values[:0], 0, w.arena[:0]
	return nil
}

// write writes rows start to end of src and returns the input bytes they
// count for: 8 per int, timestamp or float, 1 per bool or null, a string's
// length.
func (w *columnWriter) write(src source, start, end int) (int64, error) {
	c := src.col
	if c == nil {
		for range end - start {
			w.values = append(w.values, w.null)
		}
		return int64(end - start), w.flush()
	}
	nulls := c.Nulls
	isNull := func(r int) bool { return r < len(nulls) && nulls[r] }
	var size int64
	switch {
	case src.conv == convToString:
		for r := start; r < end; r++ {
			if isNull(r) {
				w.values = append(w.values, w.null)
				size++
				continue
			}
			from := len(w.arena)
			w.arena = AppendText(w.arena, c, r)
			b := w.arena[from:len(w.arena):len(w.arena)]
			size += int64(len(b))
			// A later append may move the arena; b keeps the old array.
			if err := w.str(b); err != nil {
				return size, err
			}
		}
	case c.Type == wire.TypeString:
		for r := start; r < end; r++ {
			if isNull(r) {
				w.values = append(w.values, w.null)
				size++
				continue
			}
			s := c.Strings[r]
			size += int64(len(s))
			// The writer copies the bytes and never modifies them, so
			// the string's memory can back the value.
			if err := w.str(unsafe.Slice(unsafe.StringData(s), len(s))); err != nil {
				return size, err
			}
		}
	case src.conv == convIntToFloat:
		vals := w.values[:end-start]
		for k := range vals {
			if r := start + k; isNull(r) {
				vals[k] = w.null
			} else {
				v := parquet.DoubleValue(float64(c.Ints[r]))
				v.SetDefinitionLevel(1)
				v.SetColumnIndex(w.index)
				vals[k] = v
			}
		}
		w.values = vals
		size = 8 * int64(end-start)
	case c.Type == wire.TypeInt || c.Type == wire.TypeTimestamp:
		vals := w.values[:end-start]
		for k := range vals {
			if r := start + k; isNull(r) {
				vals[k] = w.null
			} else {
				v := parquet.Int64Value(c.Ints[r])
				v.SetDefinitionLevel(1)
				v.SetColumnIndex(w.index)
				vals[k] = v
			}
		}
		w.values = vals
		size = 8 * int64(end-start)
	case c.Type == wire.TypeFloat:
		vals := w.values[:end-start]
		for k := range vals {
			if r := start + k; isNull(r) {
				vals[k] = w.null
			} else {
				v := parquet.DoubleValue(c.Floats[r])
				v.SetDefinitionLevel(1)
				v.SetColumnIndex(w.index)
				vals[k] = v
			}
		}
		w.values = vals
		size = 8 * int64(end-start)
	case c.Type == wire.TypeBool:
		vals := w.values[:end-start]
		for k := range vals {
			if r := start + k; isNull(r) {
				vals[k] = w.null
			} else {
				v := parquet.BooleanValue(c.Bools[r])
				v.SetDefinitionLevel(1)
				v.SetColumnIndex(w.index)
				vals[k] = v
			}
		}
		w.values = vals
		size = int64(end - start)
	}
	return size, w.flush()
}
