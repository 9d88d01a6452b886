package parse

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/trainfeed/trainfeed/internal/chunk"
)

// parquetMagic starts (and ends) every Parquet file.
const parquetMagic = "PAR1"

// parseParquet reads a Parquet body. Its footer, which says where
// everything is, is at its end, so the body is spooled to a temporary file
// first (on disk, not in memory), then read one row group at a time, a few
// rows at once. Each top-level column becomes a column: integers, floats,
// bools and strings as such, timestamps and dates as timestamps, decimals
// as floats when exact (as text otherwise), nested lists and structs as
// their JSON text. The "line" of a row is its 1-based row number.
func parseParquet(in *input, b *builder) error {
	f, err := os.CreateTemp("", "trainfeed-parquet-*")
	if err != nil {
		return fmt.Errorf("parquet: spool body: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := io.Copy(f, in.parquet)
	if err != nil {
		return in.fail(1, err)
	}
	pf, err := parquet.OpenFile(f, size)
	if err != nil {
		return &ParseError{Line: 1, Err: fmt.Errorf("not a readable Parquet file: %w", err)}
	}
	schema := pf.Schema()
	fields := schema.Fields()
	header := make([]string, len(fields))
	for i, fl := range fields {
		header[i] = fl.Name()
	}
	names := columnNames(header)
	b.cols = make([]*column, len(names))
	for i, name := range names {
		b.cols[i] = newColumn(name, b.capHint)
	}
	var row int64
	rec := map[string]any{}
	buf := make([]parquet.Row, 64)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				row++
				clear(rec)
				if err := schema.Reconstruct(&rec, r); err != nil {
					rows.Close()
					return &ParseError{Line: row, Err: fmt.Errorf("parquet row %d: %w", row, err)}
				}
				if b.full() {
					if err := b.flush(false); err != nil {
						rows.Close()
						return err
					}
				}
				b.startRow(row)
				size := len(fields)
				for i, fl := range fields {
					k, text, iv := parquetValue(fl, rec[fl.Name()])
					b.cols[i].addJSON(k, text, iv)
					size += len(text)
				}
				b.endRow(size)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return &ParseError{Line: row + 1, Err: fmt.Errorf("parquet row %d: %w", row+1, err)}
			}
		}
		if err := rows.Close(); err != nil {
			return &ParseError{Line: row, Err: fmt.Errorf("parquet: %w", err)}
		}
	}
	if row != pf.NumRows() {
		return &ParseError{Line: row, Err: fmt.Errorf("parquet: read %d rows, the footer says %d", row, pf.NumRows())}
	}
	return b.flush(true)
}

// parquetValue returns a reconstructed value of field fl as the JSON
// parser would give it to a column: its kind, its text and, for an int,
// its value.
func parquetValue(fl parquet.Field, v any) (jsonKind, string, int64) {
	var logical *format.LogicalType
	if fl.Leaf() {
		logical = fl.Type().LogicalType()
	}
	switch v := v.(type) {
	case nil:
		return kindNull, "", 0
	case bool:
		return kindBool, strconv.FormatBool(v), 0
	case int32:
		return parquetInt(int64(v), logical)
	case int64:
		return parquetInt(v, logical)
	case uint32:
		return kindInt, strconv.FormatUint(uint64(v), 10), int64(v)
	case uint64:
		if v > math.MaxInt64 {
			return kindString, strconv.FormatUint(v, 10), 0
		}
		return kindInt, strconv.FormatUint(v, 10), int64(v)
	case float32:
		return parquetFloat(float64(v), 32)
	case float64:
		return parquetFloat(v, 64)
	case string:
		return kindString, strings.ToValidUTF8(v, "\uFFFD"), 0
	case []byte:
		return kindString, strings.ToValidUTF8(string(v), "\uFFFD"), 0
	case deprecated.Int96:
		// Legacy timestamps: nanoseconds of the day, then the Julian day.
		nanos := int64(v[1])<<32 | int64(v[0])
		us := (int64(v[2])-2440588)*86_400_000_000 + nanos/1000
		return kindString, string(chunk.AppendTimestamp(nil, us)), 0
	default:
		text, err := json.Marshal(v)
		if err != nil {
			return kindString, fmt.Sprint(v), 0
		}
		return kindString, strings.ToValidUTF8(string(text), "\uFFFD"), 0
	}
}

// parquetInt returns an integer of a column with the given logical type:
// a timestamp or a date as a timestamp's text, anything else as an int.
func parquetInt(v int64, logical *format.LogicalType) (jsonKind, string, int64) {
	if logical == nil {
		return kindInt, strconv.FormatInt(v, 10), v
	}
	switch t := logical.Value.(type) {
	case *format.TimestampType:
		us := v
		switch t.Unit.Value.(type) {
		case *format.MilliSeconds:
			us = v * 1000
		case *format.NanoSeconds:
			us = v / 1000
		}
		return kindString, string(chunk.AppendTimestamp(nil, us)), 0
	case *format.DateType:
		return kindString, string(chunk.AppendTimestamp(nil, v*86_400_000_000)), 0
	}
	return kindInt, strconv.FormatInt(v, 10), v
}

// parquetFloat returns a float as its shortest text; NaN and infinities,
// which neither JSON nor a float column of a chunk's readers hold alike,
// are null.
func parquetFloat(f float64, bits int) (jsonKind, string, int64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return kindNull, "", 0
	}
	return kindFloat, strconv.FormatFloat(f, 'g', -1, bits), 0
}
