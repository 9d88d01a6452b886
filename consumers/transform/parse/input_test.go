package parse

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

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
