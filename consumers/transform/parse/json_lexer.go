package parse

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON lexer of jsonlParser: values, numbers, strings with their
// escapes, and skipping a value it does not keep, on one line's text.

// skipWS skips JSON whitespace and reports whether there was any.
func (p *jsonlParser) skipWS() bool {
	start := p.i
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return p.i > start
		}
	}
	return p.i > start
}

// value parses the value at p.i.
func (p *jsonlParser) value() (jsonKind, string, int64, error) {
	if p.i >= len(p.s) {
		return 0, "", 0, p.syntax("value")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		s, err := p.str()
		return kindString, s, 0, err
	case c == '{' || c == '[':
		start := p.i
		p.ws = false
		if err := p.skipValue(2); err != nil {
			return 0, "", 0, err
		}
		text := p.s[start:p.i]
		if p.ws {
			p.scratch = appendCompact(p.scratch[:0], text)
			text = string(p.scratch)
		}
		if !utf8.ValidString(text) {
			text = strings.ToValidUTF8(text, "\uFFFD")
		}
		return kindString, text, 0, nil
	case c == 't', c == 'f', c == 'n':
		lit, err := p.literal()
		switch lit {
		case "null":
			return kindNull, "", 0, err
		default:
			return kindBool, lit, 0, err
		}
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		isInt, err := p.number()
		if err != nil {
			return 0, "", 0, err
		}
		text := p.s[start:p.i]
		if isInt {
			if v, ok := parseInt64(text); ok {
				return kindInt, text, v, nil
			}
		}
		return kindFloat, text, 0, nil
	}
	return 0, "", 0, p.syntax("value")
}

// literal parses true, false or null.
func (p *jsonlParser) literal() (string, error) {
	for _, lit := range [...]string{"true", "false", "null"} {
		if strings.HasPrefix(p.s[p.i:], lit) {
			p.i += len(lit)
			return lit, nil
		}
	}
	return "", p.syntax("value")
}

// number scans the number at p.i and reports whether it is an integer
// literal, without fraction or exponent.
func (p *jsonlParser) number() (bool, error) {
	s, i := p.s, p.i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.i = i
		return false, p.syntax("digit")
	}
	isInt := true
	if i < len(s) && s[i] == '.' {
		isInt = false
		i++
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			p.i = i
			return false, p.syntax("digit after '.'")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		isInt = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			p.i = i
			return false, p.syntax("digit in exponent")
		}
	}
	p.i = i
	return isInt, nil
}

// str parses the string at p.i and returns its value as valid UTF-8.
func (p *jsonlParser) str() (string, error) {
	s := p.s
	start := p.i + 1
	ascii := true
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			p.i = i + 1
			v := s[start:i]
			if !ascii && !utf8.ValidString(v) {
				v = strings.ToValidUTF8(v, "\uFFFD")
			}
			return v, nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			p.i = i
			return "", p.syntax("string character")
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	p.i = len(s)
	return "", p.syntax("'\"' closing string")
}

// strEscaped decodes the string whose content starts at start and holds
// escapes, as encoding/json does: a \u escape of a lone surrogate becomes
// U+FFFD.
func (p *jsonlParser) strEscaped(start int) (string, error) {
	s := p.s
	buf := p.scratch[:0]
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.i = i + 1
			p.scratch = buf
			if !utf8.Valid(buf) {
				return strings.ToValidUTF8(string(buf), "\uFFFD"), nil
			}
			return string(buf), nil
		case c < 0x20:
			p.i = i
			return "", p.syntax("string character")
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			p.i = len(s)
			return "", p.syntax("escape")
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				p.i = i
				return "", p.syntax("4 hex digits after \\u")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if len(s) >= i+2 && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			p.i = i + 1
			return "", p.syntax("escape character")
		}
		i += 2
	}
	p.i = len(s)
	return "", p.syntax("'\"' closing string")
}

// hex4 parses the 4 hex digits s starts with.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipValue checks the value at p.i, nested depth levels deep, and moves
// past it, noting in p.ws any whitespace inside it.
func (p *jsonlParser) skipValue(depth int) error {
	if p.i >= len(p.s) {
		return p.syntax("value")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.skipString()
	case c == '{' || c == '[':
		if depth > maxDepth {
			return errors.New("invalid json: nested too deep")
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		p.i++
		p.ws = p.skipWS() || p.ws
		if p.i < len(p.s) && p.s[p.i] == closing {
			p.i++
			return nil
		}
		for {
			if closing == '}' {
				if p.i >= len(p.s) || p.s[p.i] != '"' {
					return p.syntax("object key")
				}
				if err := p.skipString(); err != nil {
					return err
				}
				p.ws = p.skipWS() || p.ws
				if p.i >= len(p.s) || p.s[p.i] != ':' {
					return p.syntax("':' after object key")
				}
				p.i++
				p.ws = p.skipWS() || p.ws
			}
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			p.ws = p.skipWS() || p.ws
			if p.i >= len(p.s) {
				return p.syntax("',' or closing bracket")
			}
			switch p.s[p.i] {
			case ',':
				p.i++
				p.ws = p.skipWS() || p.ws
			case closing:
				p.i++
				return nil
			default:
				return p.syntax("',' or closing bracket")
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		_, err := p.literal()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	}
	return p.syntax("value")
}

// skipString checks the string at p.i and moves past it.
func (p *jsonlParser) skipString() error {
	s := p.s
	for i := p.i + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			p.i = i + 1
			return nil
		case c < 0x20:
			p.i = i
			return p.syntax("string character")
		case c == '\\':
			if i+1 >= len(s) {
				p.i = len(s)
				return p.syntax("escape")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(s[i+2:]); !ok {
					p.i = i
					return p.syntax("4 hex digits after \\u")
				}
				i += 5
			default:
				p.i = i + 1
				return p.syntax("escape character")
			}
		}
	}
	p.i = len(s)
	return p.syntax("'\"' closing string")
}

// appendCompact appends the valid JSON text s without the whitespace
// outside its strings.
func appendCompact(dst []byte, s string) []byte {
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			dst = append(dst, c)
			switch c {
			case '\\':
				i++
				dst = append(dst, s[i])
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
		case '"':
			inString = true
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
