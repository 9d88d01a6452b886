package parse

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/batchtest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// parseAll parses input and returns every batch emitted.
func parseAll(t *testing.T, input []byte, opts ParseOptions) ([]*Batch, int64, error) {
	t.Helper()
	var batches []*Batch
	n, err := Parse(context.Background(), bytes.NewReader(input), opts, func(b *Batch) error {
		batches = append(batches, b)
		return nil
	})
	return batches, n, err
}

// col is a column as tests expect it: a batchtest.Col, written without
// field names in the tables.
type col batchtest.Col

func cols(b *Batch) []col {
	var out []col
	for _, c := range batchtest.Cols(b.Columns, b.Rows) {
		out = append(out, col(c))
	}
	return out
}

// requireWellFormed checks the invariants every batch keeps.
func requireWellFormed(t *testing.T, b *Batch) {
	t.Helper()
	for _, c := range b.Columns {
		require.Equal(t, b.Rows, c.Len(), "column %q", c.Name)
		if c.Nulls != nil {
			require.Len(t, c.Nulls, b.Rows, "column %q nulls", c.Name)
			require.Contains(t, c.Nulls, true, "column %q has Nulls without a null", c.Name)
		}
		for _, s := range c.Strings {
			require.True(t, utf8.ValidString(s), "column %q: %q", c.Name, s)
		}
		require.True(t, utf8.ValidString(c.Name), "column name %q", c.Name)
	}
}

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		format string
		want   []col
	}{
		{
			name:  "typed",
			input: "i,f,b,s,z,e\n1,1.5,true,x,007,\n-2,2,FALSE,y,0,\n0,-3e2,True,7,1,\n",
			want: []col{
				{"i", wire.TypeInt, []any{int64(1), int64(-2), int64(0)}},
				{"f", wire.TypeFloat, []any{1.5, 2.0, -300.0}},
				{"b", wire.TypeBool, []any{true, false, true}},
				{"s", wire.TypeString, []any{"x", "y", "7"}},
				{"z", wire.TypeString, []any{"007", "0", "1"}},
				{"e", wire.TypeString, []any{nil, nil, nil}},
			},
		},
		{
			name:  "nulls keep the type",
			input: "i,f,b,s\n,,,\n5,.5,false,a\n",
			want: []col{
				{"i", wire.TypeInt, []any{nil, int64(5)}},
				{"f", wire.TypeFloat, []any{nil, 0.5}},
				{"b", wire.TypeBool, []any{nil, false}},
				{"s", wire.TypeString, []any{nil, "a"}},
			},
		},
		{
			name:  "not quite numbers",
			input: "a,b,c,d,e,f,g,h\n+1,NaN,Inf,0x10,1_000,1 ,-0,1e999\n2,1,1,1,1,1,1,1\n",
			want: []col{
				{"a", wire.TypeString, []any{"+1", "2"}},
				{"b", wire.TypeString, []any{"NaN", "1"}},
				{"c", wire.TypeString, []any{"Inf", "1"}},
				{"d", wire.TypeString, []any{"0x10", "1"}},
				{"e", wire.TypeString, []any{"1_000", "1"}},
				{"f", wire.TypeString, []any{"1 ", "1"}},
				{"g", wire.TypeFloat, []any{0.0, 1.0}},
				{"h", wire.TypeString, []any{"1e999", "1"}},
			},
		},
		{
			name:  "int64 bounds",
			input: "a,b\n9223372036854775807,9223372036854775808\n-9223372036854775808,1\n",
			want: []col{
				{"a", wire.TypeInt, []any{int64(9223372036854775807), int64(-9223372036854775808)}},
				{"b", wire.TypeString, []any{"9223372036854775808", "1"}}, // a float64 would round it
			},
		},
		{
			name:  "numbers a float64 would not give back stay text",
			input: "a,b,c\n12345678901234567890,0.1000000000000000000001,1.50\n1,2,2.25e1\n",
			want: []col{
				{"a", wire.TypeString, []any{"12345678901234567890", "1"}},
				{"b", wire.TypeString, []any{"0.1000000000000000000001", "2"}},
				{"c", wire.TypeFloat, []any{1.5, 22.5}},
			},
		},
		{
			name:  "bool mixed with number is string",
			input: "a,b\ntrue,yes\n1,no\n",
			want: []col{
				{"a", wire.TypeString, []any{"true", "1"}},
				{"b", wire.TypeString, []any{"yes", "no"}},
			},
		},
		{
			name:  "quoted fields and CRLF",
			input: "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",2\r\n",
			want: []col{
				{"a", wire.TypeString, []any{"x,y", "multi\nline"}},
				{"b", wire.TypeString, []any{`say "hi"`, "2"}},
			},
		},
		{
			name:   "tsv",
			input:  "a\tb\n1\thello, world\n2\t\n",
			format: "tsv",
			want: []col{
				{"a", wire.TypeInt, []any{int64(1), int64(2)}},
				{"b", wire.TypeString, []any{"hello, world", nil}},
			},
		},
		{
			name:  "tsv sniffed",
			input: "a\tb\n1\t2\n",
			want: []col{
				{"a", wire.TypeInt, []any{int64(1)}},
				{"b", wire.TypeInt, []any{int64(2)}},
			},
		},
		{
			name:  "bom",
			input: "\uFEFFid,name\n1,a\n",
			want: []col{
				{"id", wire.TypeInt, []any{int64(1)}},
				{"name", wire.TypeString, []any{"a"}},
			},
		},
		{
			name:  "empty and repeated header names",
			input: "a,,a,a_2,\n1,2,3,4,5\n",
			want: []col{
				{"a", wire.TypeInt, []any{int64(1)}},
				{"col_1", wire.TypeInt, []any{int64(2)}},
				{"a_2", wire.TypeInt, []any{int64(3)}},
				{"a_2_3", wire.TypeInt, []any{int64(4)}},
				{"col_4", wire.TypeInt, []any{int64(5)}},
			},
		},
		{
			name:  "latin-1 decoded",
			input: "n\xffame,s\nok,a\xffb\xfe\x80\n",
			want: []col{
				{"nÿame", wire.TypeString, []any{"ok"}},
				{"s", wire.TypeString, []any{"aÿbþ€"}},
			},
		},
		{
			name:  "invalid utf-8 among utf-8 replaced",
			input: "n\xffame,s\nok,\"é\xfe,ü\"\n",
			want: []col{
				{"n\uFFFDame", wire.TypeString, []any{"ok"}},
				{"s", wire.TypeString, []any{"é\uFFFD,ü"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			require.NoError(t, err)
			require.Len(t, batches, 1)
			b := batches[0]
			requireWellFormed(t, b)
			require.True(t, b.Last)
			require.EqualValues(t, len(tt.want[0].Values), n)
			require.Equal(t, tt.want, cols(b))
		})
	}
}

func TestParseCSVNullsOnlyWhenNeeded(t *testing.T) {
	batches, _, err := parseAll(t, []byte("a,b\n1,\n2,x\n"), ParseOptions{})
	require.NoError(t, err)
	require.Nil(t, batches[0].Columns[0].Nulls)
	require.Equal(t, []bool{true, false}, batches[0].Columns[1].Nulls)
}

func TestParseEmpty(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		format  string
		columns []string
	}{
		{name: "header only", input: "a,b\n", columns: []string{"a", "b"}},
		{name: "nothing", input: ""},
		{name: "nothing jsonl", input: "", format: "jsonl"},
		{name: "blank lines jsonl", input: "\n  \n\r\n", format: "jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			require.NoError(t, err)
			require.Zero(t, n)
			require.Len(t, batches, 1)
			b := batches[0]
			require.Zero(t, b.Rows)
			require.True(t, b.Last)
			requireWellFormed(t, b)
			var names []string
			for _, c := range b.Columns {
				names = append(names, c.Name)
			}
			require.Equal(t, tt.columns, names)
		})
	}
}

func TestParseJSONL(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []col
	}{
		{
			name: "mixed and missing keys, nested values",
			input: `{"id":1,"x":1.5,"ok":true,"name":"a","tags":["p", "q"],"m":{"k": {"z":null}}}` + "\n" +
				"\n" +
				`{"id":2,"x":2,"ok":false,"extra":"late","mix":1}` + "\n" +
				`  {"name":"c\u00e9\n","id":-3,"x":null,"mix":"s","ok":null}  ` + "\r\n",
			want: []col{
				{"id", wire.TypeInt, []any{int64(1), int64(2), int64(-3)}},
				{"x", wire.TypeFloat, []any{1.5, 2.0, nil}},
				{"ok", wire.TypeBool, []any{true, false, nil}},
				{"name", wire.TypeString, []any{"a", nil, "cé\n"}},
				{"tags", wire.TypeString, []any{`["p","q"]`, nil, nil}},
				{"m", wire.TypeString, []any{`{"k":{"z":null}}`, nil, nil}},
				{"extra", wire.TypeString, []any{nil, "late", nil}},
				{"mix", wire.TypeString, []any{nil, "1", "s"}},
			},
		},
		{
			name: "numbers and bools mixed with strings keep their json text",
			input: `{"a":1e3,"b":true,"c":123456789012345678901,"d":-0}` + "\n" +
				`{"a":"x","b":1,"c":1,"d":0}` + "\n",
			want: []col{
				{"a", wire.TypeString, []any{"1e3", "x"}},
				{"b", wire.TypeString, []any{"true", "1"}},
				{"c", wire.TypeString, []any{"123456789012345678901", "1"}}, // a float64 would round it
				{"d", wire.TypeInt, []any{int64(0), int64(0)}},
			},
		},
		{
			name:  "repeated key: last wins",
			input: `{"a":1,"a":2}` + "\n" + `{"a":3}`,
			want:  []col{{"a", wire.TypeInt, []any{int64(2), int64(3)}}},
		},
		{
			name:  "all null and empty object",
			input: `{"a":null}` + "\n{}\n",
			want:  []col{{"a", wire.TypeString, []any{nil, nil}}},
		},
		{
			name:  "escapes",
			input: `{"k\"ey":"\t\\\/\ud83d\ude00\ud800x"}`,
			want:  []col{{`k"ey`, wire.TypeString, []any{"\t\\/😀\uFFFDx"}}},
		},
		{
			name:  "latin-1 decoded",
			input: "{\"a\xff\":\"b\xfe\",\"n\":[\"\xff\"]}\n",
			want: []col{
				{"aÿ", wire.TypeString, []any{"bþ"}},
				{"n", wire.TypeString, []any{"[\"ÿ\"]"}},
			},
		},
		{
			name:  "invalid utf-8 among utf-8 replaced",
			input: "{\"a\xff\":\"b\xfe\",\"n\":[\"\xff\"],\"u\":\"éèàü\"}\n",
			want: []col{
				{"a\uFFFD", wire.TypeString, []any{"b\uFFFD"}},
				{"n", wire.TypeString, []any{"[\"\uFFFD\"]"}},
				{"u", wire.TypeString, []any{"éèàü"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), ParseOptions{Format: "jsonl"})
			require.NoError(t, err)
			require.Len(t, batches, 1)
			requireWellFormed(t, batches[0])
			require.EqualValues(t, len(tt.want[0].Values), n)
			require.Equal(t, tt.want, cols(batches[0]))
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		format string
		line   int64
		msg    string
	}{
		{name: "short row", input: "a,b\n1,2\n3\n", line: 3, msg: "line 3: wrong number of fields: got 1, want 2"},
		{name: "long row after multi-line field", input: "a,b\n\"x\ny\",2\n1,2,3\n", line: 4, msg: "wrong number of fields"},
		{name: "text after a closing quote", input: "a,b\n1,\"x\"y\n", line: 2, msg: `field 2: text after the closing "`},
		{name: "unterminated quote", input: "a\n\"abc\n", line: 2, msg: "field 1: quoted field not closed"},
		{name: "bad header", input: "a,\"b\n", line: 1},
		{name: "invalid json", input: "{\"a\":1}\n\n{\"a\":\n", format: "jsonl", line: 3, msg: "line 3: invalid json"},
		{name: "not an object", input: "{\"a\":1}\n[1,2]\n", format: "jsonl", line: 2, msg: "not a json object"},
		{name: "trailing data", input: "{\"a\":1} x\n", format: "jsonl", line: 1, msg: "end of line"},
		{name: "two objects", input: "{\"a\":1}{\"a\":2}\n", format: "jsonl", line: 1},
		{name: "leading zero", input: "{\"a\":01}\n", format: "jsonl", line: 1},
		{name: "bad escape", input: "{\"a\":\"\\x\"}\n", format: "jsonl", line: 1},
		{name: "control character", input: "{\"a\":\"\t\"}\n", format: "jsonl", line: 1},
		{name: "unsupported format", input: "a\n", format: "xlsx", line: 0, msg: `unsupported format "xlsx"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format, Strict: true})
			require.Error(t, err)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.line, pe.Line)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestParseLineTooLong(t *testing.T) {
	// CSV records are bounded less exactly than lines, by the read-ahead.
	long := strings.Repeat("x", maxLineBytes+2*ReadBufSize+1)
	tests := []struct {
		name   string
		input  string
		format string
	}{
		{name: "jsonl", input: "{\"a\":1}\n{\"a\":\"" + long + "\"}\n", format: "jsonl"},
		{name: "csv", input: "a\n1\n" + long + "\n"},
		{name: "csv quoted", input: "a\n1\n\"" + long + "\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseAll(t, []byte(tt.input), ParseOptions{Format: tt.format})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			require.ErrorIs(t, err, errLineTooLong)
			require.GreaterOrEqual(t, pe.Line, int64(2))
		})
	}

	t.Run("long but allowed", func(t *testing.T) {
		v := strings.Repeat("y", 1<<20)
		batches, n, err := parseAll(t, []byte("{\"a\":\""+v+"\"}\n{\"a\":\"z\"}"), ParseOptions{Format: "jsonl"})
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		var got []any
		for _, b := range batches {
			got = append(got, cols(b)[0].Values...)
		}
		require.Len(t, got, 2)
		require.Len(t, got[0], len(v))
		require.True(t, got[0] == v, "long value differs")
		require.Equal(t, "z", got[1])
	})
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestParseGzip(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  []col
	}{
		{
			name:  "csv",
			input: gzipped(t, []byte("a,b\n1,x\n2,y\n")),
			want:  []col{{"a", wire.TypeInt, []any{int64(1), int64(2)}}, {"b", wire.TypeString, []any{"x", "y"}}},
		},
		{
			name:  "jsonl sniffed",
			input: gzipped(t, []byte("{\"a\":1}\n{\"a\":2.5}\n")),
			want:  []col{{"a", wire.TypeFloat, []any{1.0, 2.5}}},
		},
		{
			name:  "concatenated members",
			input: append(gzipped(t, []byte("a\n1\n")), gzipped(t, []byte("2\n"))...),
			want:  []col{{"a", wire.TypeInt, []any{int64(1), int64(2)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, tt.input, ParseOptions{})
			require.NoError(t, err)
			require.Len(t, batches, 1)
			require.EqualValues(t, 2, n)
			require.Equal(t, tt.want, cols(batches[0]))
		})
	}

	t.Run("corrupt", func(t *testing.T) {
		data := gzipped(t, bytes.Repeat([]byte("a,b\n1,2\n"), 1000))
		for _, bad := range [][]byte{data[:len(data)/2], append(data[:len(data)-8:len(data)-8], 1, 2, 3, 4, 5, 6, 7, 8), data[:5]} {
			_, _, err := parseAll(t, bad, ParseOptions{})
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
		}
	})
}

func TestParseBatches(t *testing.T) {
	var csvIn, jsonIn strings.Builder
	csvIn.WriteString("id,v\n")
	for i := range 1000 {
		csvIn.WriteString(strings.Repeat("1", i%7+1) + ",abcdefghij\n")
		jsonIn.WriteString(`{"id":` + strings.Repeat("1", i%7+1) + `,"v":"abcdefghij"}` + "\n")
	}
	tests := []struct {
		name        string
		input       string
		opts        ParseOptions
		wantBatches int
	}{
		{name: "rows", input: csvIn.String(), opts: ParseOptions{MaxBatchRows: 100}, wantBatches: 10},
		{name: "rows uneven", input: csvIn.String(), opts: ParseOptions{MaxBatchRows: 300}, wantBatches: 4},
		{name: "bytes", input: csvIn.String(), opts: ParseOptions{MaxBatchBytes: 1000}},
		{name: "one row each", input: csvIn.String(), opts: ParseOptions{MaxBatchRows: 1}, wantBatches: 1000},
		{name: "jsonl rows", input: jsonIn.String(), opts: ParseOptions{Format: "jsonl", MaxBatchRows: 250}, wantBatches: 4},
		{name: "jsonl bytes", input: jsonIn.String(), opts: ParseOptions{Format: "jsonl", MaxBatchBytes: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches, n, err := parseAll(t, []byte(tt.input), tt.opts)
			require.NoError(t, err)
			require.EqualValues(t, 1000, n)
			if tt.wantBatches > 0 {
				require.Len(t, batches, tt.wantBatches)
			} else {
				require.Greater(t, len(batches), 2)
			}
			var rows int
			line := int64(0)
			for i, b := range batches {
				requireWellFormed(t, b)
				require.Equal(t, i == len(batches)-1, b.Last, "batch %d", i)
				require.Positive(t, b.Rows)
				if tt.opts.MaxBatchRows > 0 {
					require.LessOrEqual(t, b.Rows, tt.opts.MaxBatchRows)
				}
				if tt.opts.MaxBatchBytes > 0 && b.Rows > 1 {
					require.Less(t, b.Bytes, tt.opts.MaxBatchBytes+50)
				}
				require.Greater(t, b.FirstLine, line)
				require.Equal(t, b.FirstLine+int64(b.Rows)-1, b.LastLine)
				line = b.LastLine
				rows += b.Rows
				require.Len(t, b.Columns, 2)
				require.Equal(t, wire.TypeInt, b.Columns[0].Type)
				require.Equal(t, wire.TypeString, b.Columns[1].Type)
			}
			require.Equal(t, 1000, rows)
		})
	}
}

func TestParseJSONLColumnsPerBatch(t *testing.T) {
	input := "{\"a\":1,\"b\":\"x\"}\n{\"c\":true}\n{\"b\":2,\"a\":3}\n"
	batches, n, err := parseAll(t, []byte(input), ParseOptions{Format: "jsonl", MaxBatchRows: 2})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.Len(t, batches, 2)
	require.Equal(t, []col{
		{"a", wire.TypeInt, []any{int64(1), nil}},
		{"b", wire.TypeString, []any{"x", nil}},
		{"c", wire.TypeBool, []any{nil, true}},
	}, cols(batches[0]))
	require.Equal(t, []col{
		{"b", wire.TypeString, []any{"2"}}, // text in the source's earlier batch: text from then on
		{"a", wire.TypeInt, []any{int64(3)}},
	}, cols(batches[1]))
}

func TestParseJSONLSparseKeysBoundBatches(t *testing.T) {
	var in strings.Builder
	for i := range 3000 {
		in.WriteString(`{"k` + strconv.Itoa(i) + `":1}` + "\n")
	}
	batches, n, err := parseAll(t, []byte(in.String()), ParseOptions{Format: "jsonl", MaxBatchBytes: 64 << 10})
	require.NoError(t, err)
	require.EqualValues(t, 3000, n)
	for _, b := range batches {
		requireWellFormed(t, b)
		// Every row adds a column, so a batch holds Rows² cells, nulls
		// counted: they must stay near the bound.
		require.LessOrEqual(t, b.Rows*len(b.Columns), 2*(64<<10), "batch of %d rows", b.Rows)
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestParseErrors(t *testing.T) {
	errRead := errors.New("connection reset")
	errEmit := errors.New("publish")

	t.Run("read error is not a ParseError", func(t *testing.T) {
		for _, format := range []string{"csv", "jsonl"} {
			input := "a\n1\n\"unterminated"
			if format == "jsonl" {
				input = "{\"a\":1}\n{\"a\":"
			}
			r := &failingReader{r: strings.NewReader(input), err: errRead}
			_, err := Parse(context.Background(), r, ParseOptions{Format: format}, func(*Batch) error { return nil })
			require.ErrorIs(t, err, errRead, format)
			var pe *ParseError
			require.False(t, errors.As(err, &pe), format)
		}
	})

	t.Run("read error under gzip", func(t *testing.T) {
		data := gzipped(t, bytes.Repeat([]byte("a,b\n1,2\n"), 1000))
		r := &failingReader{r: bytes.NewReader(data[:len(data)/2]), err: errRead}
		_, err := Parse(context.Background(), r, ParseOptions{}, func(*Batch) error { return nil })
		require.ErrorIs(t, err, errRead)
		var pe *ParseError
		require.False(t, errors.As(err, &pe))
	})

	t.Run("emit error", func(t *testing.T) {
		calls := 0
		n, err := Parse(context.Background(), strings.NewReader("a\n1\n2\n3\n"), ParseOptions{MaxBatchRows: 1},
			func(*Batch) error {
				calls++
				return errEmit
			})
		require.ErrorIs(t, err, errEmit)
		require.Equal(t, 1, calls)
		require.EqualValues(t, 1, n)
	})

	t.Run("context canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		_, err := Parse(ctx, strings.NewReader("a\n1\n2\n3\n"), ParseOptions{MaxBatchRows: 1},
			func(*Batch) error {
				calls++
				cancel()
				return nil
			})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, calls)
	})
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		hint, url, contentType string
		want                   string
	}{
		{hint: "CSV", url: "https://x/a.json", want: "csv"},
		{hint: "ndjson", want: "jsonl"},
		{hint: "json", want: "json"},
		{hint: "jsonlines", want: "jsonl"},
		{hint: "tsv", want: "tsv"},
		{hint: "xlsx", url: "https://x/a.tsv", want: "tsv"},
		{hint: "parquet", url: "https://x/a.tsv", want: "parquet"},
		{url: "https://x/data.csv?sig=abc#frag", want: "csv"},
		{url: "https://x/data.CSV.gz", want: "csv"},
		{url: "s3://bucket/dir/data.jsonl.gz", want: "jsonl"},
		{url: "https://x/data.ndjson", want: "jsonl"},
		{url: "https://x/data.json", want: "json"},
		{url: "https://x/data.json.zst", want: "json"},
		{url: "https://x/data.csv.zstd", want: "csv"},
		{url: "https://x/data.csv.gzip", want: "csv"},
		{contentType: "application/json", want: "json"},
		{url: "https://x/data.tsv.gz", want: "tsv"},
		{url: "https://x/data.gz", want: ""},
		{url: "https://x/csv", contentType: "text/csv; charset=utf-8", want: "csv"},
		{contentType: "application/x-ndjson", want: "jsonl"},
		{contentType: "text/tab-separated-values", want: "tsv"},
		{contentType: "application/octet-stream", want: ""},
		{contentType: "not a media type;;", want: ""},
		{want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.hint+"|"+tt.url+"|"+tt.contentType, func(t *testing.T) {
			require.Equal(t, tt.want, DetectFormat(tt.hint, tt.url, tt.contentType))
		})
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		input string
		want  string
	}{
		{"{\"a\":1}", "jsonl"},
		{" \n[{\"a\":1}]", "json"},
		{"\uFEFF  \n {\"a\":1}", "jsonl"},
		{"a,b\n", "csv"},
		{"a\tb\n", "tsv"},
		{"a\tb,c\td\n", "tsv"},
		{"", "csv"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			in, err := openInput(strings.NewReader(tt.input), ParseOptions{})
			require.NoError(t, err)
			require.Equal(t, tt.want, sniff(in.buf))
		})
	}
}

func TestParseInvalidUTF8AfterASCII(t *testing.T) {
	var in strings.Builder
	in.WriteString("\uFEFFid,s\n")
	for i := range 20000 { // well past the first buffer of input
		in.WriteString("1,plain ascii text " + strings.Repeat("x", i%5) + "\n")
	}
	in.WriteString("2,bad \xff\xfe bytes\n3,é\n")
	batches, n, err := parseAll(t, []byte(in.String()), ParseOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 20002, n)
	last := batches[len(batches)-1]
	requireWellFormed(t, last)
	require.Equal(t, "id", last.Columns[0].Name)
	s := last.Columns[1].Strings
	require.Equal(t, []string{"bad \uFFFD bytes", "é"}, s[len(s)-2:])
}
