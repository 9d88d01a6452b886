package parse

import (
	"github.com/trainfeed/trainfeed/internal/wire"

	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxDepth bounds the nesting of JSON values, as encoding/json does.
const maxDepth = 10000

// jsonlParser turns JSON lines into rows. Each line is copied into one
// string once; keys, numbers and strings without escapes are substrings of
// it, so most values cost no allocation.
type jsonlParser struct {
	in    *input
	b     *builder
	index map[string]int // column position by name, for this batch
	free  []*column      // columns of earlier batches, for their buffers
	// floors keeps each key's column.floor across batches, whose columns
	// are made anew (or reused for other keys).
	floors map[string]wire.Type
	long   []byte // a line longer than the read buffer
	pos    int    // position of the next key in the row, a guess
	nulls  int    // nulls the row added to columns it lacks

	s       string // the line being parsed
	i       int    // offset in s
	ws      bool   // whitespace seen inside the current nested value
	scratch []byte
	values  []jsonValue // the row's values, added once it is all valid
}

func newJSONLParser(in *input, b *builder) *jsonlParser {
	return &jsonlParser{in: in, b: b, index: make(map[string]int)}
}

// jsonValue is one key and value of a row being parsed.
type jsonValue struct {
	key  string
	kind jsonKind
	text string
	iv   int64
}

func parseJSONL(in *input, b *builder) error {
	p := newJSONLParser(in, b)
	var line int64
	for {
		raw, err := p.readLine()
		if len(raw) == 0 && err == io.EOF {
			return b.flush(true)
		}
		line++
		if err != nil && err != io.EOF {
			return in.fail(line, err)
		}
		in.lim.reset()
		if isBlank(raw) {
			continue
		}
		if err := p.addRow(line, string(raw)); err != nil {
			return err
		}
	}
}

// addRow parses text, which must hold one JSON object, as the row starting
// on line, or skips it when it is malformed.
func (p *jsonlParser) addRow(line int64, text string) error {
	if err := p.row(text); err != nil {
		return p.b.skip(line, err)
	}
	b := p.b
	if b.full() {
		if err := p.flush(false); err != nil {
			return err
		}
	}
	b.startRow(line)
	p.nulls = 0
	for _, v := range p.values {
		p.set(v.key, v.kind, v.text, v.iv)
	}
	clear(p.values)
	p.values = p.values[:0]
	p.endRow()
	// Padding counts too, so that rows with ever new keys can not make a
	// batch of mostly nulls grow without bound.
	b.endRow(len(text) + p.nulls)
	return nil
}

// readLine returns the next line with its newline, or a final line without
// one along with io.EOF.
func (p *jsonlParser) readLine() ([]byte, error) {
	frag, err := p.in.buf.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return frag, err
	}
	if cap(p.long) > 2*ReadBufSize {
		p.long = nil // do not keep one huge line's buffer for good
	}
	p.long = append(p.long[:0], frag...)
	for {
		frag, err = p.in.buf.ReadSlice('\n')
		if len(p.long)+len(frag) > maxLineBytes {
			return nil, errLineTooLong
		}
		p.long = append(p.long, frag...)
		if err != bufio.ErrBufferFull {
			return p.long, err
		}
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// flush emits the batch and starts the next one without columns.
func (p *jsonlParser) flush(last bool) error {
	err := p.b.flush(last)
	if p.floors == nil {
		p.floors = map[string]wire.Type{}
	}
	for _, c := range p.b.cols {
		if c.floor != "" {
			p.floors[c.name] = c.floor
		}
	}
	p.free = append(p.free, p.b.cols...)
	clear(p.b.cols)
	p.b.cols = p.b.cols[:0]
	clear(p.index)
	return err
}

// set stores the value of key in the current row.
func (p *jsonlParser) set(key string, k jsonKind, text string, iv int64) {
	b := p.b
	var c *column
	if p.pos < len(b.cols) && b.cols[p.pos].name == key {
		c = b.cols[p.pos]
	} else if i, ok := p.index[key]; ok {
		c = b.cols[i]
		p.pos = i
	} else {
		name := strings.Clone(key)
		if n := len(p.free); n > 0 {
			c = p.free[n-1]
			p.free = p.free[:n-1]
		} else {
			c = newColumn(name, b.capHint)
		}
		c.floor = p.floors[name] // "" for a key new to the source
		c.reset(name)
		if b.rows > 0 {
			c.addNulls(b.rows)
			p.nulls += b.rows
		}
		p.pos = len(b.cols)
		p.index[name] = p.pos
		b.cols = append(b.cols, c)
	}
	p.pos++
	if len(c.raw) > b.rows { // repeated key: the last one wins
		c.dropLast()
	}
	c.addJSON(k, text, iv)
}

// endRow fills the columns the row did not mention with nulls.
func (p *jsonlParser) endRow() {
	for _, c := range p.b.cols {
		if len(c.raw) == p.b.rows {
			c.addNulls(1)
			p.nulls++
		}
	}
	p.pos = 0
}

// row parses line, which must hold one JSON object, into p.values.
func (p *jsonlParser) row(line string) error {
	clear(p.values)
	p.values = p.values[:0]
	p.s, p.i = line, 0
	p.skipWS()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return errNotObject
	}
	p.i++
	p.skipWS()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return p.end()
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return p.syntax("object key")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.skipWS()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return p.syntax("':' after object key")
		}
		p.i++
		p.skipWS()
		k, text, iv, err := p.value()
		if err != nil {
			return err
		}
		p.values = append(p.values, jsonValue{key: key, kind: k, text: text, iv: iv})
		p.skipWS()
		if p.i >= len(p.s) {
			return p.syntax("',' or '}' after object value")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.skipWS()
		case '}':
			p.i++
			return p.end()
		default:
			return p.syntax("',' or '}' after object value")
		}
	}
}

// end checks that nothing but whitespace follows the object.
func (p *jsonlParser) end() error {
	p.skipWS()
	if p.i < len(p.s) {
		return p.syntax("end of line after object")
	}
	return nil
}

func (p *jsonlParser) syntax(want string) error {
	if p.i >= len(p.s) {
		return fmt.Errorf("invalid json: unexpected end of line, want %s", want)
	}
	return fmt.Errorf("invalid json at byte %d: unexpected %q, want %s", p.i+1, p.s[p.i], want)
}
