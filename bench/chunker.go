package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// chunker cuts a stream of batches into chunk files of exactly size records
// (the last one may be smaller), splitting batches where a chunk ends.
type chunker struct {
	dir    string
	format chunk.Format
	size   int
	// durable writes each file to a temp name, fsyncs and renames it, as
	// the combine stage does; otherwise files are written in place.
	durable bool

	held    []*wire.RecordBatch
	rows    int
	files   []string
	records int64
}

// add takes b and writes every chunk it completes.
func (c *chunker) add(b *wire.RecordBatch) error {
	for from := 0; from < b.Rows; {
		to := min(b.Rows, from+c.size-c.rows)
		part := b
		if from > 0 || to < b.Rows {
			part = sliceBatch(b, from, to)
		}
		c.held = append(c.held, part)
		c.rows += to - from
		from = to
		if c.rows >= c.size {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes the held batches, if they hold any record, as the next chunk.
func (c *chunker) flush() error {
	if c.rows == 0 {
		c.held = c.held[:0]
		return nil
	}
	var schema []wire.Field
	for _, b := range c.held {
		schema = chunk.MergeSchema(schema, chunk.SchemaOf(b))
	}
	name := filepath.Join(c.dir, fmt.Sprintf("chunk-%06d%s", len(c.files)+1, c.format.Ext()))
	n, err := c.write(name, schema)
	if err != nil {
		return fmt.Errorf("write chunk %s: %w", name, err)
	}
	c.files = append(c.files, name)
	c.records += n
	c.held, c.rows = c.held[:0], 0
	return nil
}

func (c *chunker) write(name string, schema []wire.Field) (int64, error) {
	path := name
	if c.durable {
		path = filepath.Join(c.dir, ".tmp-"+filepath.Base(name))
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	n, err := chunk.Write(bw, c.format, schema, c.held)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && c.durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && c.durable {
		err = os.Rename(path, name)
	}
	if err != nil {
		os.Remove(path)
		return 0, err
	}
	return n, nil
}

// sync fsyncs the folder, making the renames durable.
func (c *chunker) sync() error {
	d, err := os.Open(c.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// sliceBatch returns rows [from, to) of b as a batch sharing b's memory.
func sliceBatch(b *wire.RecordBatch, from, to int) *wire.RecordBatch {
	out := *b
	out.Rows = to - from
	out.Columns = make([]wire.Column, len(b.Columns))
	for i, c := range b.Columns {
		if len(c.Nulls) > 0 {
			c.Nulls = c.Nulls[from:to]
		}
		switch c.Type {
		case wire.TypeInt:
			c.Ints = c.Ints[from:to]
		case wire.TypeFloat:
			c.Floats = c.Floats[from:to]
		case wire.TypeBool:
			c.Bools = c.Bools[from:to]
		default:
			c.Strings = c.Strings[from:to]
		}
		out.Columns[i] = c
	}
	return &out
}
