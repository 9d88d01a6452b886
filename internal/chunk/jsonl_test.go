package chunk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// jsonlBatches returns two batches that exercise nulls, missing columns,
// conversions, unicode, invalid UTF-8 and non-finite floats.
func jsonlBatches() []*wire.RecordBatch {
	b1 := &wire.RecordBatch{SourceID: "s1", Rows: 3, Columns: []wire.Column{
		{Name: "id", Type: wire.TypeInt, Ints: []int64{1, 0, math.MinInt64}, Nulls: []bool{false, true, false}},
		{Name: "score", Type: wire.TypeInt, Ints: []int64{10, -20, 1 << 53}},
		{Name: "text", Type: wire.TypeString, Strings: []string{
			"héllo 世界 🎉",
			"bad\xffbyte\xc3",
			"q\"b\\s/\n\r\t\x01\x1f\u2028<&>",
		}},
		{Name: "mixed", Type: wire.TypeBool, Bools: []bool{true, false, true}, Nulls: []bool{false, false, true}},
	}}
	b2 := &wire.RecordBatch{SourceID: "s2", Rows: 2, Columns: []wire.Column{
		{Name: "mixed", Type: wire.TypeFloat, Floats: []float64{1e21, 0.1}},
		{Name: "score", Type: wire.TypeFloat, Floats: []float64{math.NaN(), 1.5e-7}},
		{Name: "id", Type: wire.TypeInt, Ints: []int64{4, 5}},
		{Name: "flag", Type: wire.TypeBool, Bools: []bool{true, false}},
	}}
	return []*wire.RecordBatch{b1, b2}
}

// jsonKeys returns the keys of the JSON object line, in order.
func jsonKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}

func TestWriteJSONL(t *testing.T) {
	batches := jsonlBatches()
	schema := MergeSchema(SchemaOf(batches[0]), SchemaOf(batches[1]))
	require.Equal(t, fields("id", "int", "score", "float", "text", "string", "mixed", "string", "flag", "bool"), schema)

	var buf bytes.Buffer
	n, err := Write(&buf, JSONL, schema, batches)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	require.True(t, utf8.Valid(buf.Bytes()), "output is not valid UTF-8")

	want := []map[string]any{
		{"id": 1.0, "score": 10.0, "text": "héllo 世界 🎉", "mixed": "true", "flag": nil},
		{"id": nil, "score": -20.0, "text": "bad\uFFFDbyte\uFFFD", "mixed": "false", "flag": nil},
		{"id": float64(math.MinInt64), "score": float64(1 << 53), "text": "q\"b\\s/\n\r\t\x01\x1f\u2028<&>", "mixed": nil, "flag": nil},
		{"id": 4.0, "score": nil, "text": nil, "mixed": "1e+21", "flag": true},
		{"id": 5.0, "score": 1.5e-7, "text": nil, "mixed": "0.1", "flag": false},
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	require.Len(t, lines, len(want))
	names := []string{"id", "score", "text", "mixed", "flag"}
	for i, line := range lines {
		t.Run(fmt.Sprint("line ", i), func(t *testing.T) {
			var got map[string]any
			require.NoError(t, json.Unmarshal(line, &got), "%s", line)
			require.Equal(t, want[i], got)
			require.Equal(t, names, jsonKeys(t, line))
		})
	}
	// Exact text where the encoding is a choice: integers stay integers,
	// floats are not in exponent form in the plain range, control
	// characters are escaped.
	require.Contains(t, string(lines[2]), `"id":-9223372036854775808,"score":9007199254740992,`)
	require.Contains(t, string(lines[2]), `\u0001\u001f\u2028<&>"`)
	require.Contains(t, string(lines[4]), `"score":1.5e-7,`)
}

func TestWriteJSONLNoColumns(t *testing.T) {
	var buf bytes.Buffer
	n, err := Write(&buf, JSONL, nil, []*wire.RecordBatch{{Rows: 2}, {Rows: 0}})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Equal(t, "{}\n{}\n", buf.String())
}

func TestAppendJSONFloat(t *testing.T) {
	tests := []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.125,
		math.MaxFloat64, math.SmallestNonzeroFloat64, -1e-300}
	for _, f := range tests {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			want, err := json.Marshal(f)
			require.NoError(t, err)
			require.Equal(t, string(want), string(appendJSONFloat(nil, f)))
		})
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		require.Equal(t, "null", string(appendJSONFloat(nil, f)))
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := []string{"", "plain", "héllo 世界", "🎉", "\x00\x7f", "\"\\", "a\xffb", "\xc3", "\xed\xa0\x80",
		"\u2028\u2029", "\xf4\x90\x80\x80", strings.Repeat("ab\n", 100)}
	for _, s := range tests {
		t.Run(fmt.Sprintf("%q", s), func(t *testing.T) { checkJSONString(t, s) })
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "世界", "\u2029\x1f"} {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

// checkJSONString checks that s encodes to valid UTF-8 JSON that decodes to
// what encoding/json's encoding of s decodes to.
func checkJSONString(t *testing.T, s string) {
	got := appendJSONString(nil, s)
	require.True(t, utf8.Valid(got), "%q", got)
	ref, err := json.Marshal(s)
	require.NoError(t, err)
	var gotS, refS string
	require.NoError(t, json.Unmarshal(got, &gotS), "%s", got)
	require.NoError(t, json.Unmarshal(ref, &refS))
	require.Equal(t, refS, gotS)
}
