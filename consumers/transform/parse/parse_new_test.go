package parse

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/batchtest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// skips returns the skipped rows of batches.
func skips(batches []*Batch) (listed []wire.SkippedRow, count int) {
	for _, b := range batches {
		listed = append(listed, b.Skipped...)
		count += b.SkippedRows
	}
	return listed, count
}

// values returns column name of every batch, in order.
func values(batches []*Batch, name string) []any {
	var out []any
	for _, b := range batches {
		out = batchtest.Values(out, b.Columns, b.Rows, name)
	}
	return out
}

func TestParseJSONArray(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []col
		skips []wire.SkippedRow
	}{
		{
			name:  "objects",
			input: `[{"a":1,"b":"x"},{"a":2.5,"c":[1, {"d":null}]}]`,
			want: []col{
				{"a", wire.TypeFloat, []any{1.0, 2.5}},
				{"b", wire.TypeString, []any{"x", nil}},
				{"c", wire.TypeString, []any{nil, `[1,{"d":null}]`}},
			},
		},
		{
			name:  "pretty printed over lines",
			input: "\uFEFF[\n  {\n    \"a\": \"],[{\\\"\",\n    \"b\": true\n  },\n  {\"a\": \"y\", \"b\": false}\n]\n",
			want: []col{
				{"a", wire.TypeString, []any{`],[{"`, "y"}},
				{"b", wire.TypeBool, []any{true, false}},
			},
		},
		{
			name:  "bad elements skipped with their lines",
			input: "[\n{\"a\":1},\n{\"a\":},\n2,\n\"s\",\n{\"a\":3} x,\n[1],\n},\n{\"a\":4}\n]",
			want:  []col{{"a", wire.TypeInt, []any{int64(1), int64(4)}}},
			skips: []wire.SkippedRow{
				{Line: 3, Reason: "invalid json at byte 6: unexpected '}', want value"},
				{Line: 4, Reason: "not a json object"},
				{Line: 5, Reason: "not a json object"},
				{Line: 6, Reason: "invalid json at byte 9: unexpected 'x', want end of line after object"},
				{Line: 7, Reason: "not a json object"},
				{Line: 8, Reason: "not a json object"},
			},
		},
		{
			name:  "trailing comma",
			input: `[{"a":1},]`,
			want:  []col{{"a", wire.TypeInt, []any{int64(1)}}},
			skips: []wire.SkippedRow{{Line: 1, Reason: "invalid json: empty array element"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"", "json"} {
				batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: format})
				require.NoError(t, err)
				require.Len(t, batches, 1)
				requireWellFormed(t, batches[0])
				require.EqualValues(t, len(tt.want[0].Values), n)
				require.Equal(t, tt.want, cols(batches[0]))
				listed, count := skips(batches)
				require.Equal(t, tt.skips, listed)
				require.Equal(t, len(tt.skips), count)
			}
		})
	}
}

func TestParseJSONArrayEmpty(t *testing.T) {
	for _, in := range []string{"[]", " [ \n ] \n", "[\n]"} {
		batches, n, err := parseAll(t, []byte(in), ParseOptions{Format: "json"})
		require.NoError(t, err, in)
		require.Zero(t, n)
		require.Len(t, batches, 1)
		require.True(t, batches[0].Last)
		require.Zero(t, batches[0].SkippedRows)
	}
}

func TestParseJSONArrayFatal(t *testing.T) {
	tests := []struct {
		name, input, msg string
		line             int64
	}{
		{name: "unterminated", input: "[{\"a\":1},\n{\"a\":2", msg: "unexpected end of input in array element", line: 2},
		{name: "unterminated string", input: "[{\"a\":\"x}]\n", msg: "unexpected end of input", line: 1},
		{name: "no closing bracket", input: "[{\"a\":1}\n", msg: "unexpected end of input", line: 1},
		{name: "data after the array", input: "[{\"a\":1}]\n[{\"a\":2}]", msg: "data after the array", line: 2},
		{name: "json format but not an array or object", input: "\"x\"", msg: "not a json object"},
		{name: "too deep", input: "[" + strings.Repeat("[", maxDepth+1), msg: "nested too deep", line: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: "json", Strict: true})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.ErrorContains(t, err, tt.msg)
			if tt.line > 0 {
				require.Equal(t, tt.line, pe.Line)
			}
		})
	}
}

func TestParseJSONArrayBatches(t *testing.T) {
	var in strings.Builder
	in.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			in.WriteString(",\n")
		}
		in.WriteString(`{"id":` + strings.Repeat("1", i%7+1) + `,"v":"abcdefghij"}`)
	}
	in.WriteString("]")
	batches, n, err := parseAll(t, []byte(in.String()), ParseOptions{MaxBatchRows: 100})
	require.NoError(t, err)
	require.EqualValues(t, 1000, n)
	require.Len(t, batches, 10)
	for i, b := range batches {
		require.Equal(t, 100, b.Rows)
		require.Equal(t, int64(i*100+1), b.FirstLine)
		require.Equal(t, i == 9, b.Last)
	}
}

func TestParseSkipsMalformedRows(t *testing.T) {
	tests := []struct {
		name   string
		format string
		input  string
		ids    []any
		skips  []wire.SkippedRow
	}{
		{
			name:  "csv field count and quotes",
			input: "id,v\n1,a\n2\n3,b\n4,\"x\"y\n5,\"multi\nline\"\n6,c,extra\n7,d\n",
			ids:   []any{int64(1), int64(3), int64(5), int64(7)},
			skips: []wire.SkippedRow{
				{Line: 3, Reason: "wrong number of fields: got 1, want 2"},
				{Line: 5, Reason: `field 2: text after the closing " of a quoted field (write "" for a quote inside it)`},
				{Line: 8, Reason: "wrong number of fields: got 3, want 2"},
			},
		},
		{
			name:   "jsonl invalid lines",
			format: "jsonl",
			input:  "{\"id\":1}\n{\"id\":\n[2]\n\n{\"id\":3,}\n{\"id\":5}\n",
			ids:    []any{int64(1), int64(5)},
			skips: []wire.SkippedRow{
				{Line: 2, Reason: "invalid json: unexpected end of line, want value"},
				{Line: 3, Reason: "not a json object"},
				{Line: 5, Reason: "invalid json at byte 9: unexpected '}', want object key"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, MaxBatchRows: 1})
			require.NoError(t, err)
			require.EqualValues(t, len(tt.ids), n)
			require.Equal(t, tt.ids, values(batches, "id"))
			listed, count := skips(batches)
			require.Equal(t, tt.skips, listed)
			require.Equal(t, len(tt.skips), count)
			for _, b := range batches {
				requireWellFormed(t, b)
			}

			_, _, err = parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, Strict: true})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.skips[0].Line, pe.Line)
			require.ErrorContains(t, err, tt.skips[0].Reason)
		})
	}
}

func TestParseListsAtMost100Skips(t *testing.T) {
	var in strings.Builder
	in.WriteString("a,b\n")
	for i := range 250 {
		in.WriteString("1,2\n")
		if i%2 == 0 {
			in.WriteString("bad\n")
		}
	}
	batches, n, err := parseAll(t, []byte(in.String()), ParseOptions{MaxBatchRows: 7})
	require.NoError(t, err)
	require.EqualValues(t, 250, n)
	listed, count := skips(batches)
	require.Equal(t, 125, count)
	require.Len(t, listed, maxListedSkips)
	require.Equal(t, int64(3), listed[0].Line)
}

func zstdCompress(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	_, err = zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestParseZstd(t *testing.T) {
	plain := []byte("a,b\n1,x\n2,y\n")
	skippable := append([]byte{0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'}, zstdCompress(t, plain)...)
	for name, input := range map[string][]byte{
		"frame":           zstdCompress(t, plain),
		"skippable first": skippable,
		"two frames":      append(zstdCompress(t, []byte("a,b\n1,x\n")), zstdCompress(t, []byte("2,y\n"))...),
		"jsonl in zstd":   zstdCompress(t, []byte("{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n")),
		"json array":      zstdCompress(t, []byte(`[{"a":1,"b":"x"},{"a":2,"b":"y"}]`)),
		"gzip json array": gzipped(t, []byte(`[{"a":1,"b":"x"},{"a":2,"b":"y"}]`)),
	} {
		t.Run(name, func(t *testing.T) {
			batches, n, err := parseAll(t, input, ParseOptions{})
			require.NoError(t, err)
			require.EqualValues(t, 2, n)
			require.Equal(t, []col{{"a", wire.TypeInt, []any{int64(1), int64(2)}}, {"b", wire.TypeString, []any{"x", "y"}}}, cols(batches[0]))
		})
	}
	t.Run("corrupt", func(t *testing.T) {
		data := zstdCompress(t, bytes.Repeat([]byte("a,b\n1,2\n"), 100_000))
		for _, bad := range [][]byte{data[:len(data)/2], data[:6]} {
			_, _, err := parseAll(t, bad, ParseOptions{})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.ErrorContains(t, err, "zstd")
		}
	})
}

// bomb returns a gzip (or zstd) body that expands to n bytes of zeros in
// CSV rows.
func bomb(t testing.TB, n int, z bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	if z {
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		require.NoError(t, err)
		w = zw
	} else {
		gw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		require.NoError(t, err)
		w = gw
	}
	_, err := io.WriteString(w, "a\n")
	require.NoError(t, err)
	row := bytes.Repeat([]byte("0000000\n"), 1<<14)
	for written := 0; written < n; written += len(row) {
		_, err := w.Write(row)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestParseDecompressionLimits(t *testing.T) {
	for _, z := range []bool{false, true} {
		name := map[bool]string{false: "gzip", true: "zstd"}[z]
		t.Run(name+" ratio", func(t *testing.T) {
			defer func(floor int64) { ratioFloor = floor }(ratioFloor)
			ratioFloor = 1 << 20
			data := bomb(t, 16<<20, z)
			require.Less(t, len(data), 1<<16)
			start := time.Now()
			_, n, err := parseAll(t, data, ParseOptions{MaxBatchRows: 100_000})
			require.ErrorIs(t, err, ErrDecompressionLimit)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.ErrorContains(t, err, "refused as a decompression bomb")
			require.LessOrEqual(t, 8*n, max(ratioFloor, int64(DefaultMaxDecompressionRatio*len(data))), "parsed past the limit")
			require.Less(t, time.Since(start), 30*time.Second)
		})
		t.Run(name+" size", func(t *testing.T) {
			data := bomb(t, 4<<20, z)
			_, _, err := parseAll(t, data, ParseOptions{MaxDecompressedBytes: 1 << 20})
			require.ErrorIs(t, err, ErrDecompressionLimit)
			require.ErrorContains(t, err, "decompresses to more than 1048576 bytes")
			// The same body within the limits.
			_, n, err := parseAll(t, data, ParseOptions{MaxDecompressedBytes: 8 << 20})
			require.NoError(t, err)
			require.EqualValues(t, 4<<20/8, n)
		})
	}
	t.Run("tiny limit fails while opening", func(t *testing.T) {
		_, _, err := parseAll(t, bomb(t, 1<<20, false), ParseOptions{MaxDecompressedBytes: 10})
		require.ErrorIs(t, err, ErrDecompressionLimit)
	})
}

func TestParseEncodings(t *testing.T) {
	utf16LE := func(s string) []byte {
		out := []byte{0xFF, 0xFE}
		for _, u := range utf16.Encode([]rune(s)) {
			out = append(out, byte(u), byte(u>>8))
		}
		return out
	}
	utf16BE := func(s string) []byte {
		out := []byte{0xFE, 0xFF}
		for _, u := range utf16.Encode([]rune(s)) {
			out = append(out, byte(u>>8), byte(u))
		}
		return out
	}
	tests := []struct {
		name  string
		input []byte
		want  []any
	}{
		{name: "windows-1252", input: []byte("name\nJos\xe9\n\x80 and \x93quotes\x94\n"), want: []any{"José", "€ and “quotes”"}},
		{name: "latin-1 in gzip", input: gzipped(t, []byte("name\nM\xfcller\n")), want: []any{"Müller"}},
		{name: "utf-16le", input: utf16LE("name\nJosé\n日本\n"), want: []any{"José", "日本"}},
		{name: "utf-16be", input: utf16BE("name\nJosé\n"), want: []any{"José"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, tt.input, ParseOptions{Format: "csv"})
			require.NoError(t, err)
			require.Equal(t, tt.want, values(batches, "name"))
			for _, b := range batches {
				requireWellFormed(t, b)
			}
		})
	}
}

func TestDetectEncoding(t *testing.T) {
	head := bytes.Repeat([]byte("é"), ReadBufSize/2)
	require.Equal(t, encodingUTF8, detectEncoding(head[:len(head)-1], true), "a rune cut by the buffer")
	require.Equal(t, encodingWin1252, detectEncoding([]byte("caf\xc3"), false), "a rune cut by the end")
	require.Equal(t, encodingUTF8, detectEncoding([]byte("plain"), false))
	require.Equal(t, encodingWin1252, detectEncoding([]byte("caf\xe9"), false))
	require.Equal(t, encodingUTF8, detectEncoding([]byte("café, caf\xe9 à ü"), false))
	require.Equal(t, encodingUTF8, detectEncoding([]byte("\xe9\x00"), false))
}

func TestParseTimestamps(t *testing.T) {
	ts := func(s string) any {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v.UTC()
	}
	tests := []struct {
		name, format, input string
		want                []col
	}{
		{
			name:  "csv",
			input: "t,d,mixed,num\n2024-05-01T12:30:00Z,2024-05-01,2024-05-01,2024\n2024-05-01 14:30:00.123456789+02:00,1999-12-31,soon,2025\n,,,\n",
			want: []col{
				{"t", wire.TypeTimestamp, []any{ts("2024-05-01T12:30:00Z"), ts("2024-05-01T12:30:00.123456Z"), nil}},
				{"d", wire.TypeTimestamp, []any{ts("2024-05-01T00:00:00Z"), ts("1999-12-31T00:00:00Z"), nil}},
				{"mixed", wire.TypeString, []any{"2024-05-01", "soon", nil}},
				{"num", wire.TypeInt, []any{int64(2024), int64(2025), nil}},
			},
		},
		{
			name:   "jsonl",
			format: "jsonl",
			input:  "{\"t\":\"2024-05-01T12:30:00.5-01:30\",\"n\":1}\n{\"t\":null,\"n\":\"2024-05-01\"}\n",
			want: []col{
				{"t", wire.TypeTimestamp, []any{ts("2024-05-01T14:00:00.5Z"), nil}},
				{"n", wire.TypeString, []any{"1", "2024-05-01"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			require.NoError(t, err)
			require.Len(t, batches, 1)
			requireWellFormed(t, batches[0])
			require.Equal(t, tt.want, cols(batches[0]))
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	good := map[string]string{
		"2024-01-02":                   "2024-01-02T00:00:00Z",
		"2024-02-29T23:59:59Z":         "2024-02-29T23:59:59Z",
		"2024-01-02t03:04:05z":         "2024-01-02T03:04:05Z",
		"2024-01-02T03:04":             "2024-01-02T03:04:00Z",
		"2024-01-02T03:04:05.1":        "2024-01-02T03:04:05.1Z",
		"2024-01-02T03:04:05,25+0100":  "2024-01-02T02:04:05.25Z",
		"2024-01-02T03:04:05-07":       "2024-01-02T10:04:05Z",
		"1969-12-31T23:59:59.9999999Z": "1969-12-31T23:59:59.999999Z",
		"2016-12-31T23:59:60Z":         "2017-01-01T00:00:00Z",
		"0001-01-01T00:00:00Z":         "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999Z":  "9999-12-31T23:59:59.999999Z",
	}
	for in, want := range good {
		us, ok := Timestamp(in)
		require.True(t, ok, in)
		require.Equal(t, want, time.UnixMicro(us).UTC().Format(time.RFC3339Nano), in)
	}
	for _, in := range []string{
		"", "2024", "2024-1-02", "2024-13-01", "2023-02-29", "2024-01-32", "2024-01-02T", "2024-01-02T24:00",
		"2024-01-02T03:60", "2024-01-02T03:04:61", "2024-01-02T03:04:05.", "2024-01-02T03:04:05+1", "2024-01-02T03:04:05+01:0",
		"2024-01-02T03:04:05 Z", "2024-01-02X03:04", "+2024-01-02", "2024-01-02T03:04:05+24:00", "２０２４-01-02",
	} {
		_, ok := Timestamp(in)
		require.False(t, ok, in)
	}
}

func TestParseHeaderNamesAndValuesAlwaysValidUTF8(t *testing.T) {
	batches, _, err := parseAll(t, []byte("\xff\xfe\xfd\n\x80\x81\n"), ParseOptions{})
	require.NoError(t, err)
	for _, b := range batches {
		requireWellFormed(t, b)
		for _, c := range b.Columns {
			require.True(t, utf8.ValidString(c.Name))
		}
	}
}

func TestParseContextCancelledStopsEarly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Parse(ctx, strings.NewReader("a\n1\n"), ParseOptions{}, func(*Batch) error { return nil })
	require.ErrorIs(t, err, context.Canceled)
}

// A web page or XML document is refused whatever the format hint says: a
// URL to a page about a dataset gives HTML, not data.
func TestParseRefusesMarkup(t *testing.T) {
	tests := []struct {
		name, input, format, want string
	}{
		{name: "html page", input: "<!DOCTYPE html>\n<html><body><p>a, b</p></body></html>\n", want: "an HTML page"},
		{name: "html with a csv hint", input: "\n  <html lang=\"en\">\n<p>id,name</p>\n", format: "csv", want: "an HTML page"},
		{name: "gzipped html", input: string(gzipped(t, []byte("<!doctype html><html></html>"))), format: "jsonl", want: "an HTML page"},
		{name: "xml", input: "<?xml version=\"1.0\"?><rows><row id=\"1\"/></rows>", want: "XML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "not CSV, TSV or JSON")
		})
	}
	// Data that merely mentions markup is data.
	_, n, err := parseAll(t, []byte("html,xml\n<html>,<?xml\n"), ParseOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

// A binary body fails its source with what it is, whatever its name or
// hint says, also when compressed: never rows of garbage.
func TestParseRefusesBinary(t *testing.T) {
	for _, tt := range []struct {
		name, kind string
		input      []byte
	}{
		{"png", "a PNG image", append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, '"', ','}, 100)...)},
		{"zip", "a zip archive", []byte("PK\x03\x04\x14\x00\x00\x00data.csv")},
		{"pdf", "a PDF document", []byte("%PDF-1.7\n1 0 obj\n")},
		{"arrow", "an Arrow IPC file", []byte("ARROW1\x00\x00")},
		{"nul bytes", "binary data (a NUL byte at offset 6)", []byte("name\na\x00\xff\n")},
		{"gzipped png", "a PNG image", gzipped(t, []byte("\x89PNG\r\n\x1a\nIHDR"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, tt.input, ParseOptions{Format: "csv"})
			require.ErrorIs(t, err, ErrNotText)
			require.ErrorContains(t, err, "the body is "+tt.kind)
			require.Empty(t, batches)
		})
	}
	// A Parquet file cut short is refused as such.
	_, _, err := parseAll(t, []byte("PAR1\x15\x04\x15"), ParseOptions{})
	require.ErrorContains(t, err, "line 1: not a readable Parquet file")
	_, _, err = parseAll(t, []byte("a,b\n1,2\n"), ParseOptions{Format: "parquet"})
	require.ErrorContains(t, err, "the source's format says parquet, but the body does not start as a Parquet file does")
}

// CSV as real files write it, read as DuckDB and Python's csv module read
// them: a quote inside an unquoted field is data, a line break inside a
// quoted field is kept as written, record line breaks are not data.
func TestParseCSVAsRealFilesWriteIt(t *testing.T) {
	for _, tt := range []struct {
		name, input string
		want        []any
	}{
		{"inches", "v\r\n12\" pipe\r\n3/4\" valve\r\n", []any{`12" pipe`, `3/4" valve`}},
		{"coordinates", "v,n\n37°36'37.8\"N,1\n", []any{`37°36'37.8"N`}},
		{"quote at the end", "v\nsay \"hi\"\n", []any{`say "hi"`}},
		{"crlf inside quotes", "v\r\n\"a\r\nb\"\r\n\"c\nd\"\n", []any{"a\r\nb", "c\nd"}},
		{"doubled quotes", "v\n\"x \"\"y\"\" z\"\n", []any{`x "y" z`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			batches, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: "csv"})
			require.NoError(t, err)
			require.Equal(t, tt.want, values(batches, "v"))
			for _, b := range batches {
				require.Empty(t, b.Skipped)
			}
		})
	}
}

// A column is never narrower in a later batch of a source than in an
// earlier one, so the source's batches agree whichever commits first:
// codes whose first rows have leading zeros stay text, floats stay floats.
func TestParseTypesNeverNarrowWithinASource(t *testing.T) {
	var in strings.Builder
	in.WriteString("zip,x\n00501,1.5\n02134,2.5\n")
	for i := range 10 {
		fmt.Fprintf(&in, "%d,%d\n", 10001+i, i)
	}
	batches, _, err := parseAll(t, []byte(in.String()), ParseOptions{Format: "csv", MaxBatchRows: 2})
	require.NoError(t, err)
	require.Len(t, batches, 6)
	for _, b := range batches {
		require.Equal(t, wire.TypeString, b.Columns[0].Type)
		require.Equal(t, wire.TypeFloat, b.Columns[1].Type)
	}
	require.Equal(t, "10001", batches[1].Columns[0].Strings[0])
}
