package parse

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// arrayScanner finds the elements of a JSON array in a stream without
// holding more than one element: it tracks strings and bracket depth only,
// and leaves checking an element to the row parser. So an element that is
// not valid JSON is a row to skip, and the scan goes on at the next ',' at
// depth 0; only brackets or quotes that do not balance lose the thread.
type arrayScanner struct {
	r    *bufio.Reader
	lim  *limitReader // reset as bytes that are not kept stream past
	line int64        // line of the next byte
	elem []byte       // the element being read, when it spans buffer fills
	scan jsonScan     // the element's scan
}

func newArrayScanner(in *input) *arrayScanner {
	return &arrayScanner{r: in.buf, lim: in.lim, line: 1}
}

// parseJSONArray reads a JSON array of objects, one row per element.
func parseJSONArray(in *input, b *builder) error {
	s := newArrayScanner(in)
	p := newJSONLParser(in, b)
	if err := s.rows(in, p, errors.New("invalid json: not an array")); err != nil {
		return err
	}
	if err := s.atEnd(in, "the array"); err != nil {
		return err
	}
	return p.flush(true)
}

// parseJSONAt reads the array of objects at path inside a JSON document,
// one row per element, for APIs that wrap their records
// ({"data": [...], "next": ...}). It holds no more of the document than
// parseJSONArray does: the members before and after the array are skipped
// as they stream past, checked only for balanced brackets and quotes.
func parseJSONAt(in *input, b *builder, path []string) error {
	s := newArrayScanner(in)
	for i, key := range path {
		if err := s.enter(key, pathName(path[:i])); err != nil {
			return in.fail(s.line, err)
		}
	}
	p := newJSONLParser(in, b)
	if err := s.rows(in, p, fmt.Errorf("records path: %s is not an array", pathName(path))); err != nil {
		return err
	}
	// Close the objects the array is in.
	for range path {
		if err := s.leave(); err != nil {
			return in.fail(s.line, err)
		}
	}
	if err := s.atEnd(in, "the document"); err != nil {
		return err
	}
	return p.flush(true)
}

// atEnd checks that only whitespace follows what was read, which what names.
func (s *arrayScanner) atEnd(in *input, what string) error {
	if _, err := s.skipWS(); err != io.EOF {
		return in.fail(s.line, s.eofOr(err, fmt.Errorf("invalid json: data after %s", what)))
	}
	return nil
}

// parseJSONStream reads JSON objects that follow one another, each of them
// possibly spread over lines — one pretty-printed document, or what jq
// prints — one row each. A body whose first line holds a whole object is
// JSON lines instead (parseJSONL), which can skip a malformed line and go
// on: here, quotes or brackets that do not balance lose the thread.
func parseJSONStream(in *input, b *builder) error {
	s := newArrayScanner(in)
	p := newJSONLParser(in, b)
	for {
		c, err := s.skipWS()
		if err == io.EOF {
			return p.flush(true)
		}
		if err != nil {
			return in.fail(s.line, err)
		}
		line := s.line
		if c != '{' {
			return in.fail(line, fmt.Errorf("invalid json: %q where an object should start", c))
		}
		s.r.Discard(1)
		text, _, err := s.until("}", "an object")
		if err != nil {
			return in.fail(line, err)
		}
		if err := p.addRow(line, "{"+text+"}"); err != nil {
			return err
		}
	}
}

// isJSONLines reports whether the body that head starts is JSON lines: it
// does not start with a '{', or its first line holds a whole object, or one
// of the next 16 lines is a whole object and nothing else (the first line
// is then a malformed record, to skip), or the first line is too long to
// tell. Lines of a pretty-printed object are never a whole object alone:
// they hold a key, or end with a ','.
func isJSONLines(head []byte) bool {
	head = bytes.TrimLeft(head, " \t\r\n")
	first, rest, found := bytes.Cut(head, []byte("\n"))
	if !found || first[0] != '{' {
		return true
	}
	if end := objectEnd(first); end >= 0 {
		return true
	}
	for range 16 {
		var line []byte
		if line, rest, found = bytes.Cut(rest, []byte("\n")); !found {
			return false // a partial line tells nothing
		}
		line = bytes.TrimSpace(line)
		if end := objectEnd(line); end >= 0 && end == len(line) {
			return true
		}
	}
	return false
}

// objectEnd returns the index just past the object that line starts with,
// or -1 when line does not start with '{' or the object does not end on it.
func objectEnd(line []byte) int {
	if len(line) == 0 || line[0] != '{' {
		return -1
	}
	var sc jsonScan
	var n int64
	i, err := sc.find(line[1:], "}", &n)
	if err != nil || i < 0 {
		return -1
	}
	return 1 + i + 1
}

// pathName names the value at path in errors: "the document" or "data.items".
func pathName(path []string) string {
	if len(path) == 0 {
		return "the document"
	}
	return strings.Join(path, ".")
}

// rows reads the array at the reader, one row per element; notArray is the
// error when there is none.
func (s *arrayScanner) rows(in *input, p *jsonlParser, notArray error) error {
	c, err := s.skipWS()
	if err != nil {
		return in.fail(s.line, s.eofOr(err, errors.New("invalid json: unexpected end of input")))
	}
	if c != '[' {
		return in.fail(s.line, notArray)
	}
	s.r.Discard(1)
	for first := true; ; first = false {
		c, err := s.skipWS()
		if err != nil {
			return in.fail(s.line, s.eofOr(err, nil))
		}
		line := s.line
		text, end, err := s.element()
		if err != nil {
			return in.fail(line, err)
		}
		if isBlank([]byte(text)) {
			if !(first && end == ']') {
				if err := p.b.skip(line, errors.New("invalid json: empty array element")); err != nil {
					return err
				}
			}
		} else {
			if c != '{' {
				if err := p.b.skip(line, errNotObject); err != nil {
					return err
				}
			} else if err := p.addRow(line, text); err != nil {
				return err
			}
		}
		if end == ']' {
			return nil
		}
	}
}

// enter reads the start of an object and its members up to the one named
// key, and stops at the start of that member's value. what names the object
// in errors.
func (s *arrayScanner) enter(key, what string) error {
	c, err := s.skipWS()
	if err != nil {
		return s.eofOr(err, errors.New("invalid json: unexpected end of input"))
	}
	if c != '{' {
		return fmt.Errorf("records path: %s is not a JSON object", what)
	}
	s.r.Discard(1)
	notFound := fmt.Errorf("records path: %s has no key %q", what, key)
	for first := true; ; first = false {
		c, err := s.skipWS()
		if err != nil {
			return s.eofOr(err, errors.New("invalid json: unexpected end of input in an object"))
		}
		if first && c == '}' {
			return notFound
		}
		if c != '"' {
			return fmt.Errorf("invalid json: want a key in %s, found %q", what, c)
		}
		name, err := s.key()
		if err != nil {
			return err
		}
		if c, err = s.skipWS(); err != nil || c != ':' {
			return s.eofOr(err, errors.New("invalid json: want ':' after a key"))
		}
		s.r.Discard(1)
		if name == key {
			return nil
		}
		if more, err := s.skipMember(); err != nil || !more {
			return cmp.Or(err, notFound)
		}
	}
}

// leave skips the members that follow the value just read, up to the '}'
// that closes their object.
func (s *arrayScanner) leave() error {
	for {
		if more, err := s.skipMember(); err != nil || !more {
			return err
		}
	}
}

// skipMember skips the rest of an object member's value and reports whether
// another member follows (a ',') or the object ends (a '}').
func (s *arrayScanner) skipMember() (bool, error) {
	switch end, err := s.skip(); {
	case err != nil:
		return false, err
	case end == ',':
		return true, nil
	case end == '}':
		return false, nil
	default:
		return false, fmt.Errorf("invalid json: %q in an object", end)
	}
}

// maxKeyBytes bounds an object key on a records path's way.
const maxKeyBytes = 64 << 10

// key reads the JSON string at the reader, a '"', and returns its value.
func (s *arrayScanner) key() (string, error) {
	s.r.Discard(1)
	var raw []byte
	escaped, hasEscape := false, false
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", s.eofOr(err, errors.New("invalid json: unexpected end of input in a key"))
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped, hasEscape = true, true
		case c == '"':
			if !hasEscape {
				return string(raw), nil
			}
			var name string
			if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &name); err != nil {
				return "", fmt.Errorf("invalid json: key: %w", err)
			}
			return name, nil
		case c == '\n':
			return "", errors.New("invalid json: newline in a key")
		}
		if len(raw) >= maxKeyBytes {
			return "", fmt.Errorf("invalid json: key longer than %d bytes", maxKeyBytes)
		}
		raw = append(raw, c)
	}
}

// skip reads past a value and the ',', '}' or ']' that ends it, which it
// returns, without holding any of it: it tracks strings and brackets only.
func (s *arrayScanner) skip() (byte, error) {
	sc := jsonScan{strict: true}
	for {
		s.lim.reset() // a skipped value may be of any size
		if _, err := s.r.Peek(1); err != nil {
			return 0, s.eofOr(err, errors.New("invalid json: unexpected end of input in an object"))
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		i, err := sc.next(buf, &s.line)
		if err != nil {
			return 0, err
		}
		if i >= 0 {
			s.r.Discard(i + 1)
			return buf[i], nil
		}
		s.r.Discard(len(buf))
	}
}

// jsonScan finds the end of a JSON value in a stream, across buffer fills:
// it tracks strings and brackets only.
type jsonScan struct {
	closing  []byte // the bracket that closes each open value
	inString bool
	escaped  bool
	// strict refuses a closing bracket of the wrong kind; otherwise any
	// closing bracket closes the innermost open value.
	strict bool
}

// The bytes jsonScan stops at, outside strings and inside them.
var (
	scanStops   = [256]bool{'"': true, '\\': true, '\n': true, '{': true, '}': true, '[': true, ']': true, ',': true}
	stringStops = [256]bool{'"': true, '\\': true, '\n': true}
)

// next returns the index in buf of the first ',', '}' or ']' outside every
// string and bracket, or -1 when buf holds none (scanning goes on with the
// next buffer). It adds the newlines it reads to *line.
func (sc *jsonScan) next(buf []byte, line *int64) (int, error) {
	for i := 0; i < len(buf); i++ {
		if sc.inString {
			if sc.escaped {
				sc.escaped = false
				if buf[i] == '\n' {
					*line++
				}
				continue
			}
			for i < len(buf) && !stringStops[buf[i]] {
				i++
			}
			if i == len(buf) {
				break
			}
			switch buf[i] {
			case '"':
				sc.inString = false
			case '\\':
				sc.escaped = true
			case '\n':
				*line++
			}
			continue
		}
		for i < len(buf) && !scanStops[buf[i]] {
			i++
		}
		if i == len(buf) {
			break
		}
		switch c := buf[i]; c {
		case '\n':
			*line++
		case '"':
			sc.inString = true
		case '{', '[':
			if len(sc.closing) == maxDepth {
				return 0, errors.New("invalid json: nested too deep")
			}
			sc.closing = append(sc.closing, c+2) // '}' is '{'+2, ']' is '['+2
		case ',':
			if len(sc.closing) == 0 {
				return i, nil
			}
		case '}', ']':
			n := len(sc.closing)
			if n == 0 {
				return i, nil
			}
			if sc.strict && c != sc.closing[n-1] {
				return 0, fmt.Errorf("invalid json: %q where %q belongs", c, sc.closing[n-1])
			}
			sc.closing = sc.closing[:n-1]
		}
	}
	return -1, nil
}

// find is next for the first of the bytes ends: it scans past the other
// ',', '}' and ']' that next stops at.
func (sc *jsonScan) find(buf []byte, ends string, line *int64) (int, error) {
	for from := 0; ; {
		i, err := sc.next(buf[from:], line)
		if err != nil || i < 0 {
			return i, err
		}
		if strings.IndexByte(ends, buf[from+i]) >= 0 {
			return from + i, nil
		}
		from += i + 1
	}
}

// eofOr returns err, or what to say instead of io.EOF, or when err is nil.
func (s *arrayScanner) eofOr(err, instead error) error {
	if err == nil || err == io.EOF {
		if instead == nil {
			return errors.New("invalid json: unexpected end of input in array")
		}
		return instead
	}
	return err
}

// skipWS skips JSON whitespace and returns the next byte without reading it.
func (s *arrayScanner) skipWS() (byte, error) {
	for {
		s.lim.reset() // whitespace is not kept
		buf, err := s.r.Peek(1)
		if err != nil {
			return 0, err
		}
		buf, _ = s.r.Peek(s.r.Buffered())
		for i, c := range buf {
			switch c {
			case '\n':
				s.line++
			case ' ', '\t', '\r':
			default:
				s.r.Discard(i)
				return c, nil
			}
		}
		s.r.Discard(len(buf))
	}
}

// element reads the element at the reader, up to the ',' or ']' that ends
// it at depth 0, and returns its text (which may hold trailing whitespace)
// and the byte that ended it. The ending byte is read too.
func (s *arrayScanner) element() (string, byte, error) {
	return s.until(",]", "array element")
}

// until reads up to the first of the bytes ends that comes outside strings
// and brackets, and returns the text before it and that byte, which it reads
// too. A ',', '}' or ']' outside brackets that is not one of ends is part of
// the text: the row parser finds it malformed. what names the text in errors.
func (s *arrayScanner) until(ends, what string) (string, byte, error) {
	s.elem = s.elem[:0]
	if cap(s.elem) > 2*ReadBufSize {
		s.elem = nil // do not keep one huge element's buffer for good
	}
	s.scan = jsonScan{closing: s.scan.closing[:0]}
	for {
		if _, err := s.r.Peek(1); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("invalid json: unexpected end of input in %s", what)
			}
			return "", 0, err
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		i, err := s.scan.find(buf, ends, &s.line)
		if err != nil {
			return "", 0, err
		}
		if i >= 0 {
			return s.finish(buf, i, buf[i])
		}
		if len(s.elem)+len(buf) > maxLineBytes {
			return "", 0, fmt.Errorf("%s longer than %d bytes", what, maxLineBytes)
		}
		s.elem = append(s.elem, buf...)
		s.r.Discard(len(buf))
	}
}

// finish returns the element that ends at buf[i] and reads past it.
func (s *arrayScanner) finish(buf []byte, i int, end byte) (string, byte, error) {
	var text string
	if len(s.elem) == 0 {
		text = string(buf[:i])
	} else {
		text = string(append(s.elem, buf[:i]...))
	}
	s.r.Discard(i + 1)
	return text, end, nil
}

// RecordsHint returns the records path a source most likely wants when its
// whole body was read as one record (b's only row): the first column, or
// key of a column one level down, that holds an array of objects. It
// returns "" when there is none, or b holds more than one row.
func RecordsHint(b *Batch) string {
	if b.Rows != 1 {
		return ""
	}
	for i := range b.Columns {
		c := &b.Columns[i]
		if c.Type != wire.TypeString || len(c.Strings) != 1 || (c.Nulls != nil && c.Nulls[0]) || strings.Contains(c.Name, ".") {
			continue
		}
		v := c.Strings[0]
		if isObjectArray([]byte(v)) {
			return c.Name
		}
		var obj map[string]json.RawMessage
		if !strings.HasPrefix(v, "{") || json.Unmarshal([]byte(v), &obj) != nil {
			continue
		}
		keys := slices.Sorted(maps.Keys(obj))
		for _, k := range keys {
			if !strings.Contains(k, ".") && isObjectArray(obj[k]) {
				return c.Name + "." + k
			}
		}
	}
	return ""
}

// isObjectArray reports whether text is a JSON array whose first element is
// an object.
func isObjectArray(text []byte) bool {
	var elems []json.RawMessage
	if len(text) == 0 || text[0] != '[' || json.Unmarshal(text, &elems) != nil || len(elems) == 0 {
		return false
	}
	return elems[0][0] == '{'
}
