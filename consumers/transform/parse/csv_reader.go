package parse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvReader reads records as encoding/csv does with FieldsPerRecord -1 and
// no comment character, and two differences that make it read real files
// as DuckDB and Python's csv module do: a quote inside an unquoted field is
// data (12" pipe), and a line break inside a quoted field is kept as it is
// written (\r\n stays \r\n). Otherwise it gives the same records, the same
// errors on the same lines and the same recovery on the next line
// (FuzzCSVReader holds it to that); errors name the field, not a byte
// offset. It is faster on the common line without a quote, whose fields it
// cuts out of one string made of the line, without copying them into a
// buffer first or recording field positions.
type csvReader struct {
	r     *bufio.Reader
	comma byte
	line  int // lines read
	start int // line the last record started on
	rec   []string
	buf   []byte // a quoted record's fields
	ends  []int  // end of each field in buf
	long  []byte // a line longer than the read buffer
}

// Errors of malformed quoted fields.
var (
	errAfterQuote   = errors.New(`text after the closing " of a quoted field (write "" for a quote inside it)`)
	errUnterminated = errors.New(`quoted field not closed: a " opens it and none ends it`)
)

func newCSVReader(r *bufio.Reader, comma byte) *csvReader {
	return &csvReader{r: r, comma: comma}
}

// readLine returns the next line with its line break as written; a final
// line without one comes with a nil error (a lone "\r" at its end dropped),
// then io.EOF.
func (r *csvReader) readLine() ([]byte, error) {
	line, err := r.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		if cap(r.long) > 2*ReadBufSize {
			r.long = nil
		}
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = r.r.ReadSlice('\n')
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	if n := len(line); n > 0 && err == io.EOF {
		err = nil
		if line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	r.line++
	return line, err
}

// lengthNL returns the length of the line break b ends with: 2 for
// "\r\n", 1 for "\n", 0 for none.
func lengthNL(b []byte) int {
	n := len(b)
	switch {
	case n >= 2 && b[n-2] == '\r' && b[n-1] == '\n':
		return 2
	case n > 0 && b[n-1] == '\n':
		return 1
	}
	return 0
}

// csvError is a malformed record: which line, which field (1-based) and
// what is wrong.
type csvError struct {
	Line, Field int
	Err         error
}

func (e *csvError) Error() string {
	return fmt.Sprintf("line %d, field %d: %v", e.Line, e.Field, e.Err)
}

func (e *csvError) Unwrap() error { return e.Err }

// read returns the next record, which the next call overwrites. Its errors
// are a *csvError for a malformed record (after which reading goes on at
// the next line), or the reader's error.
func (r *csvReader) read() ([]string, error) {
	var line []byte
	var errRead error
	for errRead == nil {
		line, errRead = r.readLine()
		if errRead == nil && len(line) == lengthNL(line) {
			line = nil
			continue // skip empty lines
		}
		break
	}
	if errRead == io.EOF {
		return nil, errRead
	}
	r.start = r.line
	if bytes.IndexByte(line, '"') < 0 {
		s := string(line[:len(line)-lengthNL(line)])
		r.rec = r.rec[:0]
		for {
			i := strings.IndexByte(s, r.comma)
			if i < 0 {
				r.rec = append(r.rec, s)
				break
			}
			r.rec = append(r.rec, s[:i])
			s = s[i+1:]
		}
		return r.rec, errRead
	}
	return r.readQuoted(line, errRead)
}

// readQuoted parses a record whose first line holds a quote, as
// encoding/csv's readRecord does.
func (r *csvReader) readQuoted(line []byte, errRead error) ([]string, error) {
	var err error
	r.buf = r.buf[:0]
	r.ends = r.ends[:0]
	posLine := r.line
parseField:
	for {
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, r.comma)
			field := line
			if i >= 0 {
				field = field[:i]
			} else {
				field = field[:len(field)-lengthNL(field)]
			}
			r.buf = append(r.buf, field...) // a quote in it is data
			r.ends = append(r.ends, len(r.buf))
			if i >= 0 {
				line = line[i+1:]
				continue parseField
			}
			break parseField
		}
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			switch {
			case i >= 0:
				r.buf = append(r.buf, line[:i]...)
				line = line[i+1:]
				switch {
				case len(line) > 0 && line[0] == '"':
					r.buf = append(r.buf, '"')
					line = line[1:]
				case len(line) > 0 && line[0] == r.comma:
					line = line[1:]
					r.ends = append(r.ends, len(r.buf))
					continue parseField
				case lengthNL(line) == len(line):
					r.ends = append(r.ends, len(r.buf))
					break parseField
				default:
					err = &csvError{Line: r.line, Field: len(r.ends) + 1, Err: errAfterQuote}
					break parseField
				}
			case len(line) > 0:
				r.buf = append(r.buf, line...)
				if errRead != nil {
					break parseField
				}
				line, errRead = r.readLine()
				if len(line) > 0 {
					posLine++
				}
				if errRead == io.EOF {
					errRead = nil
				}
			default:
				if errRead == nil {
					err = &csvError{Line: posLine, Field: len(r.ends) + 1, Err: errUnterminated}
					break parseField
				}
				r.ends = append(r.ends, len(r.buf))
				break parseField
			}
		}
	}
	if err == nil {
		err = errRead
	}
	str := string(r.buf)
	r.rec = r.rec[:0]
	prev := 0
	for _, end := range r.ends {
		r.rec = append(r.rec, str[prev:end])
		prev = end
	}
	return r.rec, err
}
