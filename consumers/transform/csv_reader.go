package transform

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
	"strings"
)

// csvReader reads records as encoding/csv does with LazyQuotes false,
// FieldsPerRecord -1 and no comment character: same records, same errors
// at the same positions, same recovery on the next line (FuzzCSVReader
// holds it to that). It is faster on the common line without a quote,
// whose fields it cuts out of one string made of the line, without copying
// them into a buffer first or recording field positions.
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

func newCSVReader(r *bufio.Reader, comma byte) *csvReader {
	return &csvReader{r: r, comma: comma}
}

// readLine returns the next line with "\r\n" turned into "\n", as
// encoding/csv does; a final line without a newline comes with a nil error,
// then io.EOF.
func (r *csvReader) readLine() ([]byte, error) {
	line, err := r.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		if cap(r.long) > 2*readBufSize {
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
	if n := len(line); n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		line[n-2] = '\n'
		line = line[:n-1]
	}
	return line, err
}

func lengthNL(b []byte) int {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return 1
	}
	return 0
}

// read returns the next record, which the next call overwrites. Its errors
// are encoding/csv's: a *csv.ParseError for a malformed record (after which
// reading goes on at the next line), or the reader's error.
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
	recLine := r.line
	r.buf = r.buf[:0]
	r.ends = r.ends[:0]
	col := 1 // 1-based byte position in the current line
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
			if j := bytes.IndexByte(field, '"'); j >= 0 {
				err = &csv.ParseError{StartLine: recLine, Line: r.line, Column: col + j, Err: csv.ErrBareQuote}
				break parseField
			}
			r.buf = append(r.buf, field...)
			r.ends = append(r.ends, len(r.buf))
			if i >= 0 {
				line = line[i+1:]
				col += i + 1
				continue parseField
			}
			break parseField
		}
		line = line[1:]
		col++
		for {
			i := bytes.IndexByte(line, '"')
			switch {
			case i >= 0:
				r.buf = append(r.buf, line[:i]...)
				line = line[i+1:]
				col += i + 1
				switch {
				case len(line) > 0 && line[0] == '"':
					r.buf = append(r.buf, '"')
					line = line[1:]
					col++
				case len(line) > 0 && line[0] == r.comma:
					line = line[1:]
					col++
					r.ends = append(r.ends, len(r.buf))
					continue parseField
				case lengthNL(line) == len(line):
					r.ends = append(r.ends, len(r.buf))
					break parseField
				default:
					err = &csv.ParseError{StartLine: recLine, Line: r.line, Column: col - 1, Err: csv.ErrQuote}
					break parseField
				}
			case len(line) > 0:
				r.buf = append(r.buf, line...)
				if errRead != nil {
					break parseField
				}
				col += len(line)
				line, errRead = r.readLine()
				if len(line) > 0 {
					posLine++
					col = 1
				}
				if errRead == io.EOF {
					errRead = nil
				}
			default:
				if errRead == nil {
					err = &csv.ParseError{StartLine: recLine, Line: posLine, Column: col, Err: csv.ErrQuote}
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
