package parse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// ids returns the values of column id over every batch, and the rows skipped.
func ids(t *testing.T, batches []*Batch) ([]any, int) {
	t.Helper()
	var out []any
	skipped := 0
	for _, b := range batches {
		requireWellFormed(t, b)
		skipped += b.SkippedRows
		for _, c := range cols(b) {
			if c.Name == "id" {
				out = append(out, c.Values...)
			}
		}
	}
	return out, skipped
}

func TestParseRecordsPath(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		records string
		format  string
		want    []any
		skipped int
	}{
		{
			name:    "top-level key, siblings before and after",
			input:   `{"page": 1, "data": [{"id": 1}, {"id": 2}], "next": "/p/2"}`,
			records: "data",
			want:    []any{int64(1), int64(2)},
		},
		{
			name:    "nested key; the same key elsewhere is not it",
			input:   `{"meta": {"items": [{"id": 9}]}, "data": {"total": 1, "items": [{"id": 1}]}, "links": {}}`,
			records: "data.items",
			want:    []any{int64(1)},
		},
		{
			name:    "jq's leading dot",
			input:   `{"data": [{"id": 1}]}`,
			records: ".data",
			want:    []any{int64(1)},
		},
		{
			name:    "skipped values hold brackets, quotes and commas in strings",
			input:   `{"x": "}\"],{", "y": [1, {"z": "]"}, [[]]], "data": [{"id": 1}], "w": {"a": "}"}}`,
			records: "data",
			want:    []any{int64(1)},
		},
		{
			name:    "an escaped key",
			input:   `{"d\u0061ta": [{"id": 1}]}`,
			records: "data",
			want:    []any{int64(1)},
		},
		{
			name:    "the first of duplicate keys",
			input:   `{"data": [{"id": 1}], "data": [{"id": 2}]}`,
			records: "data",
			want:    []any{int64(1)},
		},
		{
			name:    "an empty array",
			input:   `{"data": [], "next": null}`,
			records: "data",
		},
		{
			name:    "elements that are not objects are skipped rows",
			input:   `{"data": [{"id": 1}, 5, "s", {"id": 2}]}`,
			records: "data",
			want:    []any{int64(1), int64(2)},
			skipped: 2,
		},
		{
			name:    "pretty-printed, with the json hint",
			input:   "{\n  \"data\": [\n    {\"id\": 1},\n    {\"id\": 2}\n  ]\n}\n",
			records: "data",
			format:  "json",
			want:    []any{int64(1), int64(2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, Records: tt.records})
			require.NoError(t, err)
			got, skipped := ids(t, batches)
			require.Equal(t, tt.want, got)
			require.Equal(t, int64(len(tt.want)), n)
			require.Equal(t, tt.skipped, skipped)
			require.True(t, batches[len(batches)-1].Last)
		})
	}
}

func TestParseRecordsPathLines(t *testing.T) {
	input := "{\n  \"meta\": {\n    \"n\": 2\n  },\n  \"data\": [\n    {\"id\": 1},\n    {\"id\": 2}\n  ]\n}\n"
	batches, _, err := parseAll(t, []byte(input), ParseOptions{Records: "data", MaxBatchRows: 1})
	require.NoError(t, err)
	require.Len(t, batches, 2)
	require.Equal(t, []int64{6, 6}, []int64{batches[0].FirstLine, batches[0].LastLine})
	require.Equal(t, []int64{7, 7}, []int64{batches[1].FirstLine, batches[1].LastLine})
}

func TestParseRecordsPathGzip(t *testing.T) {
	body := gzipped(t, []byte(`{"results": [{"id": 1}, {"id": 2}], "count": 2}`))
	batches, _, err := parseAll(t, body, ParseOptions{Records: "results"})
	require.NoError(t, err)
	got, _ := ids(t, batches)
	require.Equal(t, []any{int64(1), int64(2)}, got)
}

// Whitespace, like a skipped value, may be longer than a record may be.
func TestParseRecordsPathLongWhitespace(t *testing.T) {
	ws := strings.Repeat(" ", maxLineBytes+ReadBufSize+1)
	input := "{" + ws + `"data":` + ws + `[` + ws + `{"id": 1}]` + ws + "}" + ws
	batches, _, err := parseAll(t, []byte(input), ParseOptions{Records: "data"})
	require.NoError(t, err)
	got, _ := ids(t, batches)
	require.Equal(t, []any{int64(1)}, got)
}

// A skipped value may be larger than a record may be: it streams past.
func TestParseRecordsPathSkipsLargeValues(t *testing.T) {
	blob := strings.Repeat("x", maxLineBytes+ReadBufSize+1)
	input := `{"blob": "` + blob + `", "more": [` + strings.Repeat(`{"a": 1},`, 1<<20) + `{}], "data": [{"id": 1}], "tail": "` + blob + `"}`
	batches, n, err := parseAll(t, []byte(input), ParseOptions{Records: "data"})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	got, _ := ids(t, batches)
	require.Equal(t, []any{int64(1)}, got)
}

func TestParseRecordsPathErrors(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		records string
		format  string
		line    int64
		wantErr string
	}{
		{"no such key", `{"meta": {}, "items": []}`, "data", "", 1, `records path: the document has no key "data"`},
		{"empty object", `{}`, "data", "", 1, `the document has no key "data"`},
		{"no such nested key", `{"data": {"total": 0}}`, "data.items", "", 1, `records path: data has no key "items"`},
		{"a bare array", `[{"id": 1}]`, "data", "", 1, "records path: the document is not a JSON object"},
		{"a key's value is not an object", `{"data": [1]}`, "data.items", "", 1, "records path: data is not a JSON object"},
		{"the value is an object", `{"data": {"id": 1}}`, "data", "", 1, "records path: data is not an array"},
		{"the value is null", `{"data": null}`, "data", "", 1, "records path: data is not an array"},
		{"cut in the array", "{\"data\": [{\"id\": 1},\n", "data", "", 2, "unexpected end of input in array"},
		{"cut after the array", `{"data": [{"id": 1}]`, "data", "", 1, "unexpected end of input in an object"},
		{"cut in a skipped value", `{"meta": {"a": [1, 2`, "data", "", 1, "unexpected end of input in an object"},
		{"brackets that do not match", `{"meta": [1}, "data": []}`, "data", "", 1, `invalid json: '}' where ']' belongs`},
		{"a bracket that closes nothing", `{"meta": 1], "data": []}`, "data", "", 1, `invalid json: ']' in an object`},
		{"no colon", `{"data" []}`, "data", "", 1, "invalid json: want ':' after a key"},
		{"not a key after a member", `{"data": [], 5: 1}`, "x", "", 1, "invalid json: want a key in the document, found '5'"},
		{"a number for a key", `{5: 1}`, "data", "", 1, "invalid json: want a key in the document"},
		{"data after the document", `{"data": []} {}`, "data", "", 1, "invalid json: data after the document"},
		{"cut before the array", "{\"data\":\n", "data", "", 2, "invalid json: unexpected end of input"},
		{"an empty key in the path", `{"data": []}`, "data..items", "", 0, `records path "data..items": empty key`},
		{"a format that is not JSON", `{"data": []}`, "data", "csv", 0, `records path "data" needs a JSON document, not csv`},
		{"JSON lines", `{"data": []}`, "data", "jsonl", 0, "needs a JSON document, not jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, Records: tt.records})
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "%v is not a *ParseError", err)
			require.ErrorContains(t, err, tt.wantErr)
			require.Equal(t, tt.line, pe.Line)
		})
	}
}

var fuzzRecords = [...]string{"data", "data.items", "a"}

// FuzzJSONAt checks the records path reader against encoding/json: whenever
// encoding/json reads the document and finds an array at the path, the
// reader must find as many records, counting skipped ones, and it may fail
// only with a *ParseError.
func FuzzJSONAt(f *testing.F) {
	for _, s := range []string{
		`{"data": [{"a": 1}, {"b": "x"}]}`,
		`{"x": "}\"],{", "data": {"items": [{"a": 1}, 2]}, "y": [[{}]]}`,
		`{"a": [], "data": null}`,
		`{"d\u0061ta": [{"a": "\ud83d\ude00"}]}`,
		`{"data": [{"a": 1}]`,
		`{"data": [{"a": 1}]} x`,
		`[{"a": 1}]`,
		`{"data": [{"a": {"b": [1, "]"]}}, {}], "data": 5}`,
		`{"data": [{"a": 1}], "data": []}`,
		`{"data": null, "data": [{"a": 1}]}`,
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, data string, which uint8) {
		records := fuzzRecords[int(which)%len(fuzzRecords)]
		var rows int64
		skipped := 0
		n, err := Parse(context.Background(), strings.NewReader(data), ParseOptions{Records: records, MaxBatchRows: 3},
			func(b *Batch) error {
				rows += int64(b.Rows)
				skipped += b.SkippedRows
				for _, c := range b.Columns {
					require.Equal(t, b.Rows, c.Len(), "column %q", c.Name)
				}
				return nil
			})
		if err != nil {
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "%v is not a *ParseError", err)
		} else {
			require.Equal(t, n, rows)
		}

		want, ok := elementsAt(data, records)
		if !ok {
			return
		}
		require.NoError(t, err, "encoding/json finds %d elements at %s", want, records)
		require.Equal(t, int64(want), rows+int64(skipped))
	})
}

// elementsAt returns the length of the array at path in the document
// encoding/json reads from data, and whether there is one there. Where a
// key repeats, the first is the one on the path, as for Parse.
func elementsAt(data, records string) (int, bool) {
	if !json.Valid([]byte(data)) {
		return 0, false
	}
	dec := json.NewDecoder(strings.NewReader(data))
	path, _ := wire.RecordsPath(records)
	for _, key := range path {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return 0, false
		}
		found := false
		for !found && dec.More() {
			name, err := dec.Token()
			if err != nil {
				return 0, false
			}
			if found = name == key; !found {
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					return 0, false
				}
			}
		}
		if !found {
			return 0, false
		}
	}
	var raw json.RawMessage
	var arr []json.RawMessage
	if dec.Decode(&raw) != nil || raw[0] != '[' || json.Unmarshal(raw, &arr) != nil {
		return 0, false // not an array: null decodes into a slice too
	}
	return len(arr), true
}

// Escapes, quotes and brackets in strings are read right wherever a buffer
// fill splits them: the body is read a byte at a time.
func TestParseJSONArrayAcrossBufferFills(t *testing.T) {
	const n = 2000
	want := `q"\"]},{` + "\n"
	var b strings.Builder
	b.WriteString(`{"skip": ["\\\"", {"x": "]}"}], "data": [`)
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"id": %d, "pad": "%s", "s": %q}`, i, strings.Repeat(" ", i%13), want)
	}
	b.WriteString(`], "after": "\\\"}"}`)
	doc := b.String()
	array := doc[strings.Index(doc, "[{") : strings.LastIndex(doc, "]")+1]
	for _, tt := range []struct {
		name, body, records string
	}{{"array", array, ""}, {"records path", doc, "data"}} {
		t.Run(tt.name, func(t *testing.T) {
			var batches []*Batch
			rows, err := Parse(context.Background(), iotest.OneByteReader(strings.NewReader(tt.body)),
				ParseOptions{Format: "json", Records: tt.records}, func(b *Batch) error {
					batches = append(batches, b)
					return nil
				})
			require.NoError(t, err)
			require.EqualValues(t, n, rows)
			last := batches[len(batches)-1]
			require.EqualValues(t, n, last.LastLine, "one element per line")
			for _, b := range batches {
				for _, c := range cols(b) {
					if c.Name == "s" {
						for _, v := range c.Values {
							require.Equal(t, want, v)
						}
					}
				}
			}
		})
	}
}

func TestRecordsHint(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`{"page": 1, "data": [{"id": 1}, {"id": 2}]}`, "data"},
		{`{"meta": {"n": [1, 2]}, "data": {"total": 2, "items": [{"id": 1}]}}`, "data.items"},
		{`{"results": [], "items": [{"id": 1}]}`, "items"},
		{`{"id": 1, "tags": ["a", "b"]}`, ""},
		{`{"id": 1, "name": "[{not json"}`, ""},
		{"{\"id\": 1}\n{\"id\": 2, \"data\": [{\"a\": 1}]}\n", ""}, // two records: JSON lines
	} {
		batches, _, err := parseAll(t, []byte(tt.body), ParseOptions{})
		require.NoError(t, err)
		require.Len(t, batches, 1)
		require.Equal(t, tt.want, RecordsHint(batches[0]), tt.body)
	}
}

// A body of JSON objects spread over lines — one pretty-printed document,
// or jq's output — is read one object per row, whatever the JSON hint.
func TestParseJSONStream(t *testing.T) {
	tests := []struct {
		name, input, format string
		want                []any
		lines               []int64
		skipped             int
	}{
		{name: "one document", input: "{\n  \"id\": 1,\n  \"tags\": [\"a\", \"}\"]\n}\n", want: []any{int64(1)}, lines: []int64{1}},
		{name: "jq output", input: "{\n  \"id\": 1\n}\n{\n  \"id\": 2\n}\n", want: []any{int64(1), int64(2)}, lines: []int64{1, 4}},
		{name: "jsonl hint", input: "{\n\"id\": 1}  {\"id\": 2}", format: "jsonl", want: []any{int64(1), int64(2)}, lines: []int64{1, 2}},
		{name: "json hint", input: " \n{\n\"id\": 1\n}", format: "json", want: []any{int64(1)}, lines: []int64{2}},
		{name: "a malformed object is a skipped row", input: "{\n\"id\": 01\n}\n{\n\"id\": 2\n}", want: []any{int64(2)}, lines: []int64{4}, skipped: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			require.NoError(t, err)
			got, skipped := ids(t, batches)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.skipped, skipped)
			var lines []int64
			for _, b := range batches {
				if b.Rows > 0 {
					lines = append(lines, b.FirstLine)
				}
			}
			if len(tt.lines) == 1 {
				require.Equal(t, tt.lines, lines)
			}
		})
	}
	for _, tt := range []struct{ name, input, msg string }{
		{"not an object", "{\n\"id\": 1\n}\n[1]\n", `line 4: invalid json: '[' where an object should start`},
		{"cut short", "{\n\"id\": 1\n", "line 1: invalid json: unexpected end of input in an object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.EqualError(t, err, tt.msg)
		})
	}
}

func TestIsJSONLines(t *testing.T) {
	for _, tt := range []struct {
		head string
		want bool
	}{
		{"{\"a\": 1}\n{\"a\": 2}\n", true},
		{"  {\"a\": \"}{\"}\n", true},
		{"{\"a\": {\"b\": [1, {}]}}\n", true},
		{"{\"a\": 1", true}, // no newline within the head: too long to tell
		{"{\n\"a\": 1\n}\n", false},
		{"{\"a\": [\n1]}\n", false},
		{"{\"a\": \"x\\\"}\n", false},
		{"{\"id\": 1, \"x\": \n{\"id\":2}\n{\"id\":3}\n", true},        // a malformed first line of JSON lines
		{"{\"id\": \"open\n\n  {\"id\": 2}  \r\n", true},               // the same, with blank lines and CRLF
		{"{\n  \"data\": [\n    {},\n    {\"id\": 1}\n  ]\n}\n", true}, // a compact last element: reads as JSON lines
		{"{\n  \"data\": [\n    {},\n    {\"id\": 1},\n", false},
		{"{\n \"a\": {\"b\": 1},\n \"c\": 2\n}\n", false},
		{"[1]\n[\n2]\n", true}, // not objects: JSON lines, whose rows are skipped
	} {
		require.Equal(t, tt.want, isJSONLines([]byte(tt.head)), tt.head)
	}
}

// FuzzJSONStream checks the reader of objects spread over lines against
// encoding/json's decoder: when the body is not JSON lines and the decoder
// reads it as objects only, Parse finds as many rows, none skipped.
func FuzzJSONStream(f *testing.F) {
	for _, s := range []string{
		"{\n  \"a\": 1\n}\n{\n  \"b\": \"}{\"\n}\n",
		"{\n\"a\": [1, {\"b\": \"\\\"]\"}]}   {\"c\": null}",
		"{\n\"a\": 01\n}",
		"{\n\"a\": 1\n}\n[1]",
		"{\n\"a\": 1\n",
		"{\n}\n{}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var rows int64
		skipped := 0
		n, err := Parse(context.Background(), strings.NewReader(data), ParseOptions{MaxBatchRows: 3}, func(b *Batch) error {
			rows += int64(b.Rows)
			skipped += b.SkippedRows
			return nil
		})
		if err != nil {
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "%v is not a *ParseError", err)
		} else {
			require.Equal(t, n, rows)
		}
		trimmed := strings.TrimLeft(data, " \t\r\n")
		if !strings.HasPrefix(trimmed, "{") || isJSONLines([]byte(data)) || !utf8.ValidString(data) ||
			strings.Count(data, "[")+strings.Count(data, "{") > 1000 {
			return // not this reader's, decoded as Latin-1, or near the depth limit
		}
		dec := json.NewDecoder(strings.NewReader(data))
		objects := 0
		for {
			var v any
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				return
			}
			if _, ok := v.(map[string]any); !ok {
				return
			}
			objects++
		}
		require.NoError(t, err, "encoding/json reads %d objects", objects)
		require.EqualValues(t, objects, rows, "rows of %q", data)
		require.Zero(t, skipped, "skipped rows of %q", data)
	})
}

// JSON lines whose first line is malformed are still JSON lines: that line
// is skipped, the rest are records.
func TestParseJSONLinesMalformedFirstLine(t *testing.T) {
	for _, format := range []string{"", "jsonl"} {
		batches, n, err := parseAll(t, []byte("{\"id\": 1, \"x\": \n{\"id\":2}\n{\"id\":3}\n{\"id\":4}\n"), ParseOptions{Format: format})
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
		_, skipped := ids(t, batches)
		require.Equal(t, 1, skipped)
	}
}
