package chunk

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// jsonlBufferSize is the size of the buffer between the JSONL encoder and
// the output.
const jsonlBufferSize = 64 << 10

// writeJSONL writes the batches as JSON Lines, one object per record with
// the schema's keys in order, and returns the number of records written.
func writeJSONL(w io.Writer, schema []wire.Field, batches []*wire.RecordBatch, plans [][]source) (int64, error) {
	// keys[i] is what precedes field i's value: `{"name":` or `,"name":`.
	keys := make([][]byte, len(schema))
	for i, f := range schema {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		key := appendJSONString([]byte{sep}, f.Name)
		keys[i] = append(key, ':')
	}
	bw := bufio.NewWriterSize(w, jsonlBufferSize)
	var n int64
	for bi, b := range batches {
		plan := plans[bi]
		for r := range b.Rows {
			buf := bw.AvailableBuffer()
			if len(plan) == 0 {
				buf = append(buf, '{')
			}
			for i, src := range plan {
				buf = append(buf, keys[i]...)
				buf = appendJSONValue(buf, src, r)
			}
			buf = append(buf, '}', '\n')
			if _, err := bw.Write(buf); err != nil {
				return n, fmt.Errorf("write record %d: %w", n, err)
			}
			n++
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("flush: %w", err)
	}
	return n, nil
}

// appendJSONValue appends row r of src as a JSON value.
func appendJSONValue(buf []byte, src source, r int) []byte {
	c := src.col
	if c == nil || c.IsNull(r) {
		return append(buf, "null"...)
	}
	switch src.conv {
	case convIntToFloat:
		return appendJSONFloat(buf, float64(c.Ints[r]))
	case convToString:
		// Formatted numbers and bools need no escaping.
		buf = append(buf, '"')
		buf = AppendText(buf, c, r)
		return append(buf, '"')
	}
	switch c.Type {
	case wire.TypeInt:
		return strconv.AppendInt(buf, c.Ints[r], 10)
	case wire.TypeTimestamp:
		buf = append(buf, '"')
		buf = AppendTimestamp(buf, c.Ints[r])
		return append(buf, '"')
	case wire.TypeFloat:
		return appendJSONFloat(buf, c.Floats[r])
	case wire.TypeBool:
		return strconv.AppendBool(buf, c.Bools[r])
	default:
		return appendJSONString(buf, c.Strings[r])
	}
}

// AppendText appends row r of c, formatted as a string column value:
// strconv's formatting for ints, floats ('g', shortest) and bools, RFC 3339
// for timestamps.
func AppendText(buf []byte, c *wire.Column, r int) []byte {
	switch c.Type {
	case wire.TypeInt:
		return strconv.AppendInt(buf, c.Ints[r], 10)
	case wire.TypeTimestamp:
		return AppendTimestamp(buf, c.Ints[r])
	case wire.TypeFloat:
		return strconv.AppendFloat(buf, c.Floats[r], 'g', -1, 64)
	case wire.TypeBool:
		return strconv.AppendBool(buf, c.Bools[r])
	default:
		return append(buf, c.Strings[r]...)
	}
}

// appendJSONFloat appends f as a JSON number the way encoding/json does
// (plain notation between 1e-6 and 1e21, exponent outside), or null when f is
// NaN or infinite, which JSON cannot hold.
func appendJSONFloat(buf []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	abs := math.Abs(f)
	fmtByte := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmtByte = 'e'
	}
	buf = strconv.AppendFloat(buf, f, fmtByte, -1, 64)
	if fmtByte == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		n := len(buf)
		if n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}

// AppendTimestamp appends the timestamp us (microseconds since the Unix
// epoch) in RFC 3339 form, in UTC ("Z"), with as few fractional digits as
// it needs, at most 6: 2024-05-01T12:30:00.25Z.
func AppendTimestamp(buf []byte, us int64) []byte {
	return time.UnixMicro(us).UTC().AppendFormat(buf, "2006-01-02T15:04:05.999999Z07:00")
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. It escapes quotes,
// backslashes, control characters and U+2028/U+2029, and replaces each byte
// of invalid UTF-8 with U+FFFD, so the output is always valid UTF-8.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, s[start:i]...)
			buf = append(buf, string(utf8.RuneError)...)
		case r == '\u2028' || r == '\u2029':
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
