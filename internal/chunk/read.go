package chunk

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// ReadFile reads a chunk file that Write wrote in format f with schema
// back into one record batch, a column per schema field (null in every row
// when the file lacks it, as a chunk of an earlier schema version does). The combine stage
// reads a committed chunk so to write it again in a widened schema; it is
// not a reader of arbitrary files: a value that does not have its field's
// type is an error.
func ReadFile(path string, f Format, schema []wire.Field) (*wire.RecordBatch, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read chunk: %w", err)
	}
	defer file.Close()
	b := &wire.RecordBatch{Columns: make([]wire.Column, len(schema))}
	for i, fl := range schema {
		b.Columns[i] = wire.Column{Name: fl.Name, Type: fl.Type}
	}
	switch f {
	case Parquet:
		var fi os.FileInfo
		if fi, err = file.Stat(); err == nil {
			err = readParquet(file, fi.Size(), b)
		}
	case JSONL:
		err = readJSONL(file, b)
	default:
		err = fmt.Errorf("unknown format %q", f)
	}
	if err != nil {
		return nil, fmt.Errorf("read chunk %s: %w", path, err)
	}
	return b, nil
}

// readParquet appends the rows of a Parquet chunk to b.
func readParquet(r io.ReaderAt, size int64, b *wire.RecordBatch) error {
	head, tail := make([]byte, 4), make([]byte, 4)
	if _, err := r.ReadAt(head, 0); err != nil || string(head) != "PAR1" {
		return errors.New("not a Parquet file")
	}
	if _, err := r.ReadAt(tail, size-4); err != nil || string(tail) != "PAR1" {
		return errors.New("not a Parquet file, or cut short")
	}
	pf, err := parquet.OpenFile(r, size)
	if err != nil {
		return err
	}
	// field[i] is the batch column of leaf column i, -1 for none.
	leaves := pf.Schema().Columns()
	field := make([]int, len(leaves))
	for i := range field {
		field[i] = -1
	}
	for i := range b.Columns {
		if leaf, ok := pf.Schema().Lookup(b.Columns[i].Name); ok {
			field[leaf.ColumnIndex] = i
		} // else null in every row, as in a chunk of an older schema version
	}
	buf := make([]parquet.Row, 256)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, row := range buf[:n] {
				for i := range b.Columns {
					appendNull(&b.Columns[i])
				}
				for _, v := range row {
					if i := field[v.Column()]; i >= 0 && !v.IsNull() {
						setParquet(&b.Columns[i], b.Rows, v)
					}
				}
				b.Rows++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	return nil
}

// appendNull appends a null row to c.
func appendNull(c *wire.Column) {
	c.Nulls = append(c.Nulls, true)
	switch c.Type {
	case wire.TypeInt, wire.TypeTimestamp:
		c.Ints = append(c.Ints, 0)
	case wire.TypeFloat:
		c.Floats = append(c.Floats, 0)
	case wire.TypeBool:
		c.Bools = append(c.Bools, false)
	default:
		c.Strings = append(c.Strings, "")
	}
}

// setParquet sets row r of c, appended as null, to v.
func setParquet(c *wire.Column, r int, v parquet.Value) {
	c.Nulls[r] = false
	switch c.Type {
	case wire.TypeInt, wire.TypeTimestamp:
		c.Ints[r] = v.Int64()
	case wire.TypeFloat:
		c.Floats[r] = v.Double()
	case wire.TypeBool:
		c.Bools[r] = v.Boolean()
	default:
		c.Strings[r] = string(v.ByteArray())
	}
}

// readJSONL appends the records of a JSON Lines chunk to b.
func readJSONL(r io.Reader, b *wire.RecordBatch) error {
	index := make(map[string]int, len(b.Columns))
	for i := range b.Columns {
		index[b.Columns[i].Name] = i
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	for line := 1; sc.Scan(); line++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		for i := range b.Columns {
			appendNull(&b.Columns[i])
		}
		for k, v := range rec {
			i, ok := index[k]
			if !ok || v == nil {
				continue
			}
			if err := setJSON(&b.Columns[i], b.Rows, v); err != nil {
				return fmt.Errorf("line %d: column %q: %w", line, k, err)
			}
		}
		b.Rows++
	}
	return sc.Err()
}

// setJSON sets row r of c, appended as null, to the decoded JSON value v.
func setJSON(c *wire.Column, r int, v any) error {
	var err error
	switch c.Type {
	case wire.TypeInt:
		n, _ := v.(json.Number)
		c.Ints[r], err = strconv.ParseInt(string(n), 10, 64)
	case wire.TypeFloat:
		n, _ := v.(json.Number)
		c.Floats[r], err = strconv.ParseFloat(string(n), 64)
	case wire.TypeBool:
		var ok bool
		if c.Bools[r], ok = v.(bool); !ok {
			err = fmt.Errorf("%v is not a bool", v)
		}
	case wire.TypeTimestamp:
		s, _ := v.(string)
		var t time.Time
		t, err = time.Parse(time.RFC3339Nano, s)
		c.Ints[r] = t.UnixMicro()
	default:
		var ok bool
		if c.Strings[r], ok = v.(string); !ok {
			err = fmt.Errorf("%v is not a string", v)
		}
	}
	if err != nil {
		return err
	}
	c.Nulls[r] = false
	return nil
}
