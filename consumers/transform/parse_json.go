package transform

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// arrayScanner finds the elements of a JSON array in a stream without
// holding more than one element: it tracks strings and bracket depth only,
// and leaves checking an element to the row parser. So an element that is
// not valid JSON is a row to skip, and the scan goes on at the next ',' at
// depth 0; only brackets or quotes that do not balance lose the thread.
type arrayScanner struct {
	r    *bufio.Reader
	line int64  // line of the next byte
	elem []byte // the element being read, when it spans buffer fills
}

// parseJSONArray reads a JSON array of objects, one row per element.
func parseJSONArray(in *input, b *builder) error {
	p := &jsonlParser{in: in, b: b, index: make(map[string]int)}
	s := &arrayScanner{r: in.buf, line: 1}
	c, err := s.skipWS()
	if err != nil || c != '[' {
		return in.fail(s.line, s.eofOr(err, errors.New("invalid json: not an array")))
	}
	s.r.Discard(1)
	for first := true; ; first = false {
		in.lim.reset()
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
				if err := b.skip(line, errors.New("invalid json: empty array element")); err != nil {
					return err
				}
			}
		} else {
			if c != '{' {
				if err := b.skip(line, errNotObject); err != nil {
					return err
				}
			} else if err := p.addRow(line, text); err != nil {
				return err
			}
		}
		if end == ']' {
			break
		}
	}
	// Only whitespace may follow the array.
	if _, err := s.skipWS(); err != io.EOF {
		return in.fail(s.line, s.eofOr(err, errors.New("invalid json: data after the array")))
	}
	return p.flush(true)
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
	s.elem = s.elem[:0]
	if cap(s.elem) > 2*readBufSize {
		s.elem = nil // do not keep one huge element's buffer for good
	}
	var (
		depth    int
		inString bool
		escaped  bool
	)
	for {
		if _, err := s.r.Peek(1); err != nil {
			if err == io.EOF {
				err = errors.New("invalid json: unexpected end of input in array element")
			}
			return "", 0, err
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		for i, c := range buf {
			if c == '\n' {
				s.line++
			}
			if inString {
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				depth++
				if depth > maxDepth {
					return "", 0, errors.New("invalid json: nested too deep")
				}
			case '}':
				if depth > 0 { // a stray '}' is the element's problem
					depth--
				}
			case ']':
				if depth == 0 {
					return s.finish(buf, i, c)
				}
				depth--
			case ',':
				if depth == 0 {
					return s.finish(buf, i, c)
				}
			}
		}
		if len(s.elem)+len(buf) > maxLineBytes {
			return "", 0, fmt.Errorf("array element longer than %d bytes", maxLineBytes)
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
