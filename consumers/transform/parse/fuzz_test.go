package parse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

var fuzzFormats = [...]string{"", "csv", "tsv", "jsonl"}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"a,b,c\n1,2.5,true\n-3,,x\n",
		"id,name\n007,\"quoted, \"\"name\"\"\"\n\"1\",\n",
		"\uFEFFa\tb\n1\t\xff\n",
		"a,a,\n1,2,3\n4,5\n",
		"a\n\"unterminated\n",
		"{\"a\":1,\"b\":\"x\",\"c\":[1,{\"d\":null}]}\n\n{\"a\":2.5,\"e\":true}\n",
		"{\"a\":\"\\u00e9\\ud83d\\ude00\",\"a\":1e400}\n{\"b\":-0}\r\n",
		"{\"a\":1}\n[1]\n",
		"{\"a\":\"\xff\xfe\"}",
		"",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i), uint8(i%3), uint16(i*7))
	}
	f.Add(gzipped(f, []byte("a,b\n1,x\n2,y\n")), uint8(0), uint8(1), uint16(0))
	f.Add(gzipped(f, []byte("{\"a\":1}\n{\"a\":true}\n")), uint8(3), uint8(0), uint16(4))

	f.Fuzz(func(t *testing.T, data []byte, format, maxRows uint8, maxBytes uint16) {
		opts := ParseOptions{
			Format:        fuzzFormats[int(format)%len(fuzzFormats)],
			MaxBatchRows:  int(maxRows % 8),
			MaxBatchBytes: int(maxBytes),
		}
		var rows int64
		var batches []*Batch
		n, err := Parse(context.Background(), bytes.NewReader(data), opts, func(b *Batch) error {
			require.False(t, len(batches) > 0 && batches[len(batches)-1].Last, "emit after the last batch")
			batches = append(batches, b)
			rows += int64(b.Rows)
			return nil
		})
		if err != nil {
			// bytes.Reader does not fail and emit neither: only the input can.
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "%v is not a *ParseError", err)
			return
		}
		require.NotEmpty(t, batches)
		require.Equal(t, n, rows)
		for i, b := range batches {
			require.Equal(t, i == len(batches)-1, b.Last)
			if !b.Last || i > 0 {
				require.Positive(t, b.Rows, "only a lone batch may be empty")
			}
			if opts.MaxBatchRows > 0 {
				require.LessOrEqual(t, b.Rows, opts.MaxBatchRows)
			}
			names := map[string]bool{}
			for _, c := range b.Columns {
				require.True(t, utf8.ValidString(c.Name), "name %q", c.Name)
				require.False(t, names[c.Name], "duplicate column %q", c.Name)
				names[c.Name] = true
				require.Equal(t, b.Rows, c.Len(), "column %q", c.Name)
				require.Equal(t, b.Rows, len(c.Ints)+len(c.Floats)+len(c.Bools)+len(c.Strings), "column %q", c.Name)
				if c.Nulls != nil {
					require.Len(t, c.Nulls, b.Rows)
					require.Contains(t, c.Nulls, true)
				}
				for _, s := range c.Strings {
					require.True(t, utf8.ValidString(s), "value %q", s)
				}
			}
		}
	})
}

// FuzzJSONObject checks the JSON lines scanner against encoding/json: both
// accept the same lines, and give the same values for valid UTF-8.
func FuzzJSONObject(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":-2.5e3,"c":"x","d":true,"e":null,"f":[1, 2],"g":{"h":[]}}`,
		`{"a":"\u00e9\ud83d\ude00\ud800\"\\\/\b\f\n\r\t","a":9223372036854775808}`,
		` { "k" : "v" } `,
		`{"a":-0,"b":0.0,"c":1E+2,"d":1e400,"e":123456789012345678901234567890}`,
		`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a":tru}`, `{"a":1,}`, `{}`, `[1]`, `"s"`, `{"a":[1,]}`,
		`{"a":{"b":{"c":[[[]]]}}}`, "{\"a\":\"\t\"}", `{"a":"\u12"}`, `{"e":true,"e":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsRune(line, '\n') || strings.Trim(line, " \t\r") == "" || strings.HasPrefix(line, "\uFEFF") ||
			strings.HasPrefix(line, "\xff\xfe") || strings.HasPrefix(line, "\xfe\xff") || // UTF-16 byte order marks
			strings.HasPrefix(line, "\x28\xb5\x2f\xfd") || // zstd
			(len(line) >= 2 && line[0] == 0x1f && line[1] == 0x8b) {
			return // not one line of JSON lines input, or one the parser decodes or decompresses first
		}
		rest := strings.TrimLeft(line, " \t\r")
		wantOK := json.Valid([]byte(line)) && strings.HasPrefix(rest, "{")
		batches, n, err := parseAllF(t, line)
		if !wantOK {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		if !utf8.ValidString(line) {
			return // encoding/json replaces invalid bytes one by one, Parse by runs
		}
		want := referenceRow(t, line)
		b := batches[0]
		require.Len(t, b.Columns, len(want))
		for i, c := range b.Columns {
			require.Equal(t, want[i].name, c.Name)
			require.Equal(t, want[i].typ, c.Type, "column %q", c.Name)
			require.Equal(t, want[i].value, c.Value(0), "column %q", c.Name)
		}
	})
}

func parseAllF(t *testing.T, line string) ([]*Batch, int64, error) {
	t.Helper()
	var batches []*Batch
	n, err := Parse(context.Background(), strings.NewReader(line), ParseOptions{Format: "jsonl", Strict: true}, func(b *Batch) error {
		batches = append(batches, b)
		return nil
	})
	return batches, n, err
}

type refValue struct {
	name  string
	typ   wire.Type
	value any
}

// referenceRow decodes one JSON object with encoding/json and types it the
// way Parse types a single row: a repeated key takes its last value, in a
// type wide enough for all of its values.
func referenceRow(t *testing.T, line string) []refValue {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	raws := map[string][]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		key := tok.(string)
		var raw json.RawMessage
		require.NoError(t, dec.Decode(&raw))
		if _, ok := raws[key]; !ok {
			keys = append(keys, key)
		}
		raws[key] = append(raws[key], raw)
	}
	row := make([]refValue, len(keys))
	for i, key := range keys {
		row[i] = referenceValue(t, key, raws[key])
	}
	return row
}

// exactlyShortest reports whether the decimal text equals, exactly as a
// rational number, the shortest decimal that gives back f.
func exactlyShortest(text string, f float64) bool {
	want, ok := new(big.Rat).SetString(text)
	if !ok {
		return false
	}
	got, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok && want.Cmp(got) == 0
}

func referenceValue(t *testing.T, key string, raws []json.RawMessage) refValue {
	t.Helper()
	kinds := map[jsonKind]bool{}
	for _, raw := range raws {
		switch raw[0] {
		case 'n':
		case 't', 'f':
			kinds[kindBool] = true
		case '"', '{', '[':
			kinds[kindString] = true
		default:
			if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
				kinds[kindInt] = true
			} else {
				kinds[kindFloat] = true
			}
		}
	}
	last := raws[len(raws)-1]
	v := refValue{name: key}
	switch {
	case last[0] == 'n': // the row is the batch: an all-null column
		v.typ = wire.TypeString
		return v
	case kinds[kindString] || (kinds[kindBool] && len(kinds) > 1):
		v.typ = wire.TypeString
	case kinds[kindBool]:
		v.typ = wire.TypeBool
	case kinds[kindFloat]:
		v.typ = wire.TypeFloat
	default:
		v.typ = wire.TypeInt
	}
	switch v.typ {
	case wire.TypeInt:
		i, err := strconv.ParseInt(string(last), 10, 64)
		require.NoError(t, err)
		v.value = i
		return v
	case wire.TypeFloat:
		if f, err := strconv.ParseFloat(string(last), 64); err == nil && exactlyShortest(string(last), f) {
			v.value = f
			return v
		}
		v.typ = wire.TypeString // out of range or rounded: the column keeps its text
	case wire.TypeBool:
		v.value = last[0] == 't'
		return v
	}
	switch last[0] {
	case '"':
		var s string
		require.NoError(t, json.Unmarshal(last, &s))
		v.value = s
	case '{', '[':
		var buf bytes.Buffer
		require.NoError(t, json.Compact(&buf, last))
		v.value = buf.String()
	default:
		v.value = string(last)
	}
	return v
}

// FuzzJSONArray checks the JSON array parser against encoding/json: on a
// valid array every object element is a row and every other element a
// skipped row; on any input the batches are well formed.
func FuzzJSONArray(f *testing.F) {
	for _, s := range []string{
		`[{"a":1,"b":"x"},{"a":2.5,"c":[1,{"d":null}]}]`,
		"[\n {\"a\": \"],[{\\\"\"},\n 2,\n \"s\",\n {\"a\":}\n]",
		`[]`, ` [ ] `, `[{}]`, `[{"a":1},]`, `[,]`, `[{"a":1}`, `[{"a":"\u00e9\ud83d\ude00"}]`,
		`[[1,2],{"a":[{"b":{}}]},null,true]`, `[{"a":1}] [`, "[{\"a\":\"\xff\"}]", `[}, {"a":1}]`,
	} {
		f.Add(s, uint8(2))
	}
	f.Fuzz(func(t *testing.T, data string, maxRows uint8) {
		var batches []*Batch
		n, err := Parse(context.Background(), strings.NewReader(data), ParseOptions{Format: "json", MaxBatchRows: int(maxRows % 8)},
			func(b *Batch) error {
				batches = append(batches, b)
				return nil
			})
		if err != nil {
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "%v is not a *ParseError", err)
			return
		}
		var rows int64
		skipped := 0
		for i, b := range batches {
			require.Equal(t, i == len(batches)-1, b.Last)
			rows += int64(b.Rows)
			skipped += b.SkippedRows
			for _, c := range b.Columns {
				require.True(t, utf8.ValidString(c.Name))
				require.Equal(t, b.Rows, c.Len(), "column %q", c.Name)
				for _, s := range c.Strings {
					require.True(t, utf8.ValidString(s))
				}
			}
		}
		require.Equal(t, n, rows)

		trimmed := strings.TrimLeft(data, " \t\r\n")
		if !strings.HasPrefix(trimmed, "[") || !utf8.ValidString(data) || strings.Count(data, "[")+strings.Count(data, "{") > 1000 {
			return // not comparable: sniffed as JSON lines, decoded as Latin-1, or near the depth limit
		}
		var elems []json.RawMessage
		if json.Unmarshal([]byte(data), &elems) != nil {
			return
		}
		objects := 0
		for _, e := range elems {
			if e[0] == '{' {
				objects++
			}
		}
		require.EqualValues(t, objects, n, "rows of %q", data)
		require.Equal(t, len(elems)-objects, skipped, "skipped elements of %q", data)
	})
}

// FuzzCSVReader holds csvReader to encoding/csv: the same records (line
// breaks inside quoted fields as written, which encoding/csv turns into
// "\n"), the same kind of error on the same line, record after record, up
// to a quote inside an unquoted field, which csvReader reads as data where
// encoding/csv fails.
func FuzzCSVReader(f *testing.F) {
	for _, s := range []string{
		"a,b,c\n1,2,3\n", "a,\"b\nc\",d\r\ne,f\n", "x\"y,z\n1,2\n", "\"a\"b,c\n\"\"\"\",d\n",
		"\"unterminated\nmore\n", "\n\r\n\na,b\r", "a\tb\n\"c\td\"\te\n", "\"a\",\n,\"\"\n", "a,\"b\"\r\n",
		"\"x\"\"\ny\",1\n2,\"\"z\n", "\"a\r\nb\",c\r\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data string, tsv bool) {
		comma := byte(',')
		if tsv {
			comma = '\t'
		}
		want := csv.NewReader(strings.NewReader(data))
		want.Comma = rune(comma)
		want.FieldsPerRecord = -1
		got := newCSVReader(bufio.NewReaderSize(strings.NewReader(data), 16), comma)
		for range 1000 {
			wrec, werr := want.Read()
			if errors.Is(werr, csv.ErrBareQuote) {
				return // data to csvReader: the records from here on differ
			}
			grec, gerr := got.read()
			if werr == nil || werr == io.EOF {
				require.Equal(t, werr, gerr, "input %q", data)
			} else {
				var wpe *csv.ParseError
				require.ErrorAs(t, werr, &wpe)
				var gpe *csvError
				require.ErrorAs(t, gerr, &gpe, "input %q: encoding/csv: %v", data, werr)
				require.Equal(t, wpe.Line, gpe.Line, "input %q", data)
			}
			if werr == io.EOF {
				return
			}
			if werr == nil {
				for i := range grec {
					grec[i] = strings.ReplaceAll(grec[i], "\r\n", "\n")
				}
				require.Equal(t, wrec, grec, "input %q", data)
				line, _ := want.FieldPos(0)
				require.Equal(t, line, got.start, "input %q", data)
			}
		}
	})
}
