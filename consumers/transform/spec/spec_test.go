package spec

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/batchtest"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// csvBatches parses input (CSV, or any format Parse detects) into batches
// of at most rows rows.
func csvBatches(t *testing.T, input string, rows int) []*parse.Batch {
	t.Helper()
	var batches []*parse.Batch
	_, err := parse.Parse(context.Background(), strings.NewReader(input), parse.ParseOptions{MaxBatchRows: rows}, func(b *parse.Batch) error {
		batches = append(batches, b)
		return nil
	})
	require.NoError(t, err)
	return batches
}

// col is a column as tests expect it: a batchtest.Col, written without
// field names in the tables.
type col batchtest.Col

func cols(b *parse.Batch) []col {
	var out []col
	for _, c := range batchtest.Cols(b.Columns, b.Rows) {
		out = append(out, col(c))
	}
	return out
}

// values returns every value of column name in batches.
func values(batches []*parse.Batch, name string) []any {
	var out []any
	for _, b := range batches {
		out = batchtest.Values(out, b.Columns, b.Rows, name)
	}
	return out
}

// applySpec runs the YAML spec over batches as one source.
func applySpec(t *testing.T, spec string, funcs map[string]Func, batches ...*parse.Batch) ([]*parse.Batch, error) {
	t.Helper()
	s, err := ParseSpec([]byte(spec), "yaml")
	require.NoError(t, err)
	prog, err := Compile(s, funcs)
	require.NoError(t, err)
	r := prog.NewRun(context.Background())
	var out []*parse.Batch
	for _, b := range batches {
		nb, err := r.Apply(b)
		if err != nil {
			return out, err
		}
		require.NoError(t, checkBatch(nb))
		out = append(out, nb)
	}
	return out, nil
}

func TestSpecSteps(t *testing.T) {
	const input = "id,name,score,tag,text,when\n" +
		"1,  Alice   Smith ,3.5,a,The quick  brown fox,2024-01-02T03:04:05Z\n" +
		"2,BOB,,b,,2024-01-03\n" +
		"3,Émile,-2,c,\"  tabs\tand\nnewlines \",2024-01-04\n" +
		"4,dave,10,a,one,2024-01-05\n"
	tests := []struct {
		name string
		spec string
		want []col
	}{
		{
			name: "select, rename, drop",
			spec: "steps:\n- select: [text, id, name]\n- rename: {text: body, name: who}\n- drop: [who]\n",
			want: []col{
				{"body", wire.TypeString, []any{"The quick  brown fox", nil, "  tabs\tand\nnewlines ", "one"}},
				{"id", wire.TypeInt, []any{int64(1), int64(2), int64(3), int64(4)}},
			},
		},
		{
			name: "rename swaps",
			spec: "steps:\n- select: [id, tag]\n- rename: {id: tag, tag: id}\n",
			want: []col{
				{"tag", wire.TypeInt, []any{int64(1), int64(2), int64(3), int64(4)}},
				{"id", wire.TypeString, []any{"a", "b", "c", "a"}},
			},
		},
		{
			name: "lower and trim",
			spec: "steps:\n- select: [name, text]\n- trim: [name, text]\n- lower: [name]\n",
			want: []col{
				{"name", wire.TypeString, []any{"alice smith", "bob", "émile", "dave"}},
				{"text", wire.TypeString, []any{"The quick brown fox", nil, "tabs and newlines", "one"}},
			},
		},
		{
			name: "cast",
			spec: "steps:\n- select: [id, score, tag, when]\n- cast: {id: string, score: int, tag: bool, when: int}\n",
			want: []col{
				{"id", wire.TypeString, []any{"1", "2", "3", "4"}},
				{"score", wire.TypeInt, []any{nil, nil, int64(-2), int64(10)}},
				{"tag", wire.TypeBool, []any{nil, nil, nil, nil}},
				{"when", wire.TypeInt, []any{int64(1704164645), int64(1704240000), int64(1704326400), int64(1704412800)}},
			},
		},
		{
			name: "drop empty",
			spec: "steps:\n- drop_empty: [score, text]\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(1), int64(3), int64(4)}}},
		},
		{
			name: "drop empty any column",
			spec: "steps:\n- drop_empty: ['*']\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(1), int64(3), int64(4)}}},
		},
		{
			name: "filter number",
			spec: "steps:\n- filter: {column: score, op: '>=', value: 3}\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(1), int64(4)}}},
		},
		{
			name: "filter in",
			spec: "steps:\n- filter: {column: tag, op: in, values: [a, c]}\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(1), int64(3), int64(4)}}},
		},
		{
			name: "filter not in on ints",
			spec: "steps:\n- filter: {column: id, op: not_in, values: [1, 2.0, '3']}\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(4)}}},
		},
		{
			name: "filter timestamps",
			spec: "steps:\n- filter: {column: when, op: '<', value: 2024-01-04}\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(1), int64(2)}}},
		},
		{
			name: "filter strings",
			spec: "steps:\n- filter: {column: tag, op: '!=', value: a}\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(2), int64(3)}}},
		},
		{
			name: "features",
			spec: "steps:\n" +
				"- log1p: {column: score}\n" +
				"- tokens: {column: text, as: words}\n" +
				"- length: {column: name}\n" +
				"- hash_bucket: {column: tag, buckets: 1}\n" +
				"- one_hot: {column: tag, values: [a, b]}\n" +
				"- select: [score_log1p, words, name_len, tag_bucket, tag_a, tag_b]\n",
			want: []col{
				{"score_log1p", wire.TypeFloat, []any{math.Log1p(3.5), nil, nil, math.Log1p(10)}},
				{"words", wire.TypeInt, []any{int64(4), nil, int64(3), int64(1)}},
				{"name_len", wire.TypeInt, []any{int64(16), int64(3), int64(5), int64(4)}},
				{"tag_bucket", wire.TypeInt, []any{int64(0), int64(0), int64(0), int64(0)}},
				{"tag_a", wire.TypeInt, []any{int64(1), int64(0), int64(0), int64(1)}},
				{"tag_b", wire.TypeInt, []any{int64(0), int64(1), int64(0), int64(0)}},
			},
		},
		{
			name: "dedupe",
			spec: "steps:\n- dedupe: [tag]\n- select: [id]\n",
			want: []col{{"id", wire.TypeInt, []any{int64(1), int64(2), int64(3)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := applySpec(t, tt.spec, nil, csvBatches(t, input, 100)...)
			require.NoError(t, err)
			require.Len(t, out, 1)
			require.Equal(t, tt.want, cols(out[0]))
		})
	}
}

func TestSpecHashBucketIsStable(t *testing.T) {
	out, err := applySpec(t, "steps:\n- hash_bucket: {column: k, buckets: 1000, as: b}\n", nil,
		csvBatches(t, "k\nuser_1\nuser_2\nuser_1\n", 10)...)
	require.NoError(t, err)
	b := cols(out[0])[1].Values
	require.Equal(t, b[0], b[2])
	// FNV-1a 64 of "user_1" modulo 1000, as any implementation computes it.
	require.Equal(t, int64(fnvString(fnvOffset, "user_1")%1000), b[0])
	require.NotEqual(t, b[0], b[1])
}

func TestSpecDedupeAcrossBatchesAndTypes(t *testing.T) {
	// Batch 2 types k as int, batch 3 as string: the key is the text.
	batches := csvBatches(t, "k,v\nx,1\n5,2\n5,3\n007,4\nx,5\n", 1)
	out, err := applySpec(t, "steps:\n- dedupe: [k]\n", nil, batches...)
	require.NoError(t, err)
	var kept []any
	for _, b := range out {
		kept = append(kept, values([]*parse.Batch{b}, "v")...)
	}
	require.Equal(t, []any{int64(1), int64(2), int64(4)}, kept)

	// Nulls are part of the key; a null and "" differ.
	out, err = applySpec(t, "steps:\n- dedupe: [a, b]\n", nil, csvBatches(t, "a,b\n,1\n,1\n1,\n1,\n", 10)...)
	require.NoError(t, err)
	require.Equal(t, 2, out[0].Rows)
}

func TestSpecMissingColumns(t *testing.T) {
	t.Run("unknown column fails naming it", func(t *testing.T) {
		_, err := applySpec(t, "steps:\n- lower: [a]\n- select: [a, nmae]\n", nil, csvBatches(t, "a,name\nx,y\n", 10)...)
		var se *StepError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 2, se.Step)
		require.Equal(t, "select", se.Op)
		require.EqualError(t, err, `transform step 2 (select): no column "nmae" (the data has "a", "name"; list a column a source may lack under optional)`)
	})
	t.Run("json key seen before is null where absent", func(t *testing.T) {
		batches := csvBatches(t, "{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n", 1)
		out, err := applySpec(t, "steps:\n- select: [b, a]\n- lower: [b]\n", nil, batches...)
		require.NoError(t, err)
		require.Equal(t, []any{"x", nil}, values(out, "b"))
	})
	t.Run("optional column", func(t *testing.T) {
		out, err := applySpec(t, "optional: [extra]\nsteps:\n- select: [a, extra]\n- cast: {extra: int}\n", nil,
			csvBatches(t, "a\n1\n", 10)...)
		require.NoError(t, err)
		require.Equal(t, []col{{"a", wire.TypeInt, []any{int64(1)}}, {"extra", wire.TypeInt, []any{nil}}}, cols(out[0]))
	})
	t.Run("rename onto an existing column", func(t *testing.T) {
		_, err := applySpec(t, "steps:\n- rename: {a: b}\n", nil, csvBatches(t, "a,b\n1,2\n", 10)...)
		require.ErrorContains(t, err, `two columns named "b" after renaming`)
	})
	t.Run("wrong type", func(t *testing.T) {
		_, err := applySpec(t, "steps:\n- filter: {column: a, op: '>', value: x}\n", nil, csvBatches(t, "a\n1\n", 10)...)
		require.ErrorContains(t, err, `column "a" holds int values in this batch, which do not compare with "x"`)
		_, err = applySpec(t, "steps:\n- log1p: {column: a}\n", nil, csvBatches(t, "a\ntrue\n", 10)...)
		require.ErrorContains(t, err, `column "a" holds bool values in this batch, want numbers`)
	})
}

func TestSpecFilterEdges(t *testing.T) {
	// A string batch of a number column compares as numbers, rows that are
	// not numbers fail; NaN and null never pass.
	out, err := applySpec(t, "steps:\n- filter: {column: v, op: '<', value: 10}\n", nil,
		csvBatches(t, "v\n5\nn/a\n20\n\n7.5\n", 10)...)
	require.NoError(t, err)
	require.Equal(t, []any{"5", "7.5"}, values(out, "v"))

	out, err = applySpec(t, "steps:\n- filter: {column: f, op: '==', value: true}\n", nil,
		csvBatches(t, "f\ntrue\nFALSE\n\nTrue\n", 10)...)
	require.NoError(t, err)
	require.Equal(t, []any{true, true}, values(out, "f"))

	nan := &parse.Batch{Rows: 2, Columns: []wire.Column{{Name: "x", Type: wire.TypeFloat, Floats: []float64{math.NaN(), 1}}}}
	out, err = applySpec(t, "steps:\n- filter: {column: x, op: '!=', value: 0}\n", nil, nan)
	require.NoError(t, err)
	require.Equal(t, []any{1.0}, values(out, "x"))
}

func TestSpecFunc(t *testing.T) {
	double := func(_ context.Context, b *parse.Batch) (*parse.Batch, error) {
		for i := range b.Columns {
			if c := &b.Columns[i]; c.Type == wire.TypeInt {
				for r := range c.Ints {
					c.Ints[r] *= 2
				}
			}
		}
		return b, nil
	}
	broken := func(_ context.Context, b *parse.Batch) (*parse.Batch, error) {
		b.Rows++
		return b, nil
	}
	failing := func(context.Context, *parse.Batch) (*parse.Batch, error) { return nil, errors.New("boom") }
	funcs := map[string]Func{"double": double, "broken": broken, "failing": failing}

	out, err := applySpec(t, "steps:\n- func: double\n- filter: {column: a, op: '>', value: 2}\n", funcs, csvBatches(t, "a\n1\n2\n", 10)...)
	require.NoError(t, err)
	require.Equal(t, []any{int64(4)}, values(out, "a"))

	_, err = applySpec(t, "steps:\n- func: broken\n", funcs, csvBatches(t, "a\n1\n", 10)...)
	require.ErrorContains(t, err, `transform step 1 (func): func broken: column "a" holds 1 values for 2 rows`)
	_, err = applySpec(t, "steps:\n- func: failing\n", funcs, csvBatches(t, "a\n1\n", 10)...)
	require.ErrorContains(t, err, "func failing: boom")

	s, err := ParseSpec([]byte("steps:\n- func: missing\n"), "yaml")
	require.NoError(t, err, "funcs are checked when the stage starts")
	_, err = Compile(s, funcs)
	require.ErrorContains(t, err, `step 1 (func): no func "missing" registered in Config.Funcs`)
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"steps:\n- {}\n", "step 1: no operation"},
		{"steps:\n- select: [a]\n  drop: [b]\n", "step 1: several operations (select, drop): one per step"},
		{"steps:\n- selct: [a]\n", "field selct not found"},
		{"steps:\n- select: []\n", "step 1 (select): no columns"},
		{"steps:\n- select: [a, a]\n", `column "a" listed twice`},
		{"steps:\n- select: ['']\n", "empty column name"},
		{"steps:\n- cast: {a: decimal}\n", `step 1 (cast): column "a": unknown type "decimal"`},
		{"steps:\n- rename: {a: c, b: c}\n", `two columns renamed to "c"`},
		{"steps:\n- filter: {column: a, op: '~', value: 1}\n", `unknown op "~"`},
		{"steps:\n- filter: {column: a, op: '<'}\n", "no value"},
		{"steps:\n- filter: {column: a, op: '<', value: true}\n", `op "<" does not order booleans`},
		{"steps:\n- filter: {column: a, op: in, value: 1}\n", `op "in" takes values, not value`},
		{"steps:\n- filter: {column: a, op: in, values: []}\n", `op "in": no values`},
		{"steps:\n- filter: {column: a, op: '==', value: [1]}\n", "want a number, a string or a bool"},
		{"steps:\n- hash_bucket: {column: a, buckets: 0}\n", "buckets 0: want 1 to"},
		{"steps:\n- one_hot: {column: a, values: []}\n", "0 values: want 1 to 256"},
		{"steps:\n- one_hot: {column: a, values: [x, x]}\n", `value "x" listed twice`},
		{"steps:\n- drop_empty: ['*', a]\n", `"*" stands alone`},
		{"steps:\n- log1p: {as: x}\n", "step 1 (log1p): no column"},
		{"optional: ['']\nsteps: []\n", "optional: empty column name"},
		{"steps: [\n", "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := ParseSpec([]byte(tt.spec), "yaml")
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err := ParseSpec([]byte(`{"steps":[{"select":["a"],"bogus":1}]}`), "json")
	require.ErrorContains(t, err, `unknown field "bogus"`)
	_, err = ParseSpec([]byte(`{"steps":[]} {}`), "json")
	require.ErrorContains(t, err, "data after the spec")
}

func TestLoadSpecs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	write("reviews.yaml", "steps:\n- lower: [text]\n")
	write("clicks.json", `{"steps":[{"filter":{"column":"n","op":">","value":1.5}}]}`)
	write("README.md", "not a spec")
	specs, err := LoadSpecs(dir)
	require.NoError(t, err)
	require.Len(t, specs, 2)
	require.Equal(t, []string{"text"}, specs["reviews"].Steps[0].Lower)
	require.Equal(t, ">", specs["clicks"].Steps[0].Filter.Op)

	one, err := LoadSpecs(filepath.Join(dir, "reviews.yaml"))
	require.NoError(t, err)
	require.Contains(t, one, "*")

	write("bad name!.yaml", "steps: []\n")
	_, err = LoadSpecs(dir)
	require.ErrorContains(t, err, "is not a dataset name")
	require.NoError(t, os.Remove(filepath.Join(dir, "bad name!.yaml")))

	write("broken.yml", "steps:\n- cast: {a: nope}\n")
	_, err = LoadSpecs(dir)
	require.ErrorContains(t, err, "broken.yml: step 1 (cast)")

	_, err = LoadSpec(filepath.Join(dir, "README.md"))
	require.ErrorContains(t, err, "want a .yaml, .yml or .json file")
	_, err = LoadSpecs(filepath.Join(dir, "missing"))
	require.Error(t, err)
}

func TestCastColumn(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 500_000_000, time.UTC).UnixMicro()
	tests := []struct {
		name string
		in   wire.Column
		to   wire.Type
		want []any
	}{
		{"float to int", wire.Column{Type: wire.TypeFloat, Floats: []float64{2, 2.5, math.NaN(), 1e300}}, wire.TypeInt, []any{int64(2), nil, nil, nil}},
		{"string to int", wire.Column{Type: wire.TypeString, Strings: []string{" 7 ", "007", "1e3", "x"}}, wire.TypeInt, []any{int64(7), int64(7), int64(1000), nil}},
		{"string to bool", wire.Column{Type: wire.TypeString, Strings: []string{"Yes", "0", "off", "maybe"}}, wire.TypeBool, []any{true, false, false, nil}},
		{"int to timestamp", wire.Column{Type: wire.TypeInt, Ints: []int64{0, math.MaxInt64}}, wire.TypeTimestamp, []any{time.Unix(0, 0).UTC(), nil}},
		{"timestamp to string", wire.Column{Type: wire.TypeTimestamp, Ints: []int64{ts}}, wire.TypeString, []any{"2024-01-02T03:04:05.5Z"}},
		{"timestamp to float", wire.Column{Type: wire.TypeTimestamp, Ints: []int64{ts}}, wire.TypeFloat, []any{float64(ts) / 1e6}},
		{"float to bool", wire.Column{Type: wire.TypeFloat, Floats: []float64{0, -1, math.NaN()}}, wire.TypeBool, []any{false, true, nil}},
		{"bool to timestamp", wire.Column{Type: wire.TypeBool, Bools: []bool{true}}, wire.TypeTimestamp, []any{nil}},
		{"nulls stay", wire.Column{Type: wire.TypeString, Strings: []string{"", "1"}, Nulls: []bool{true, false}}, wire.TypeFloat, []any{nil, 1.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := castColumn(&tt.in, tt.to, len(tt.want))
			require.Equal(t, tt.to, out.Type)
			var got []any
			for i := range tt.want {
				got = append(got, out.Value(i))
			}
			require.Equal(t, tt.want, got)
			if out.Nulls != nil {
				require.Contains(t, out.Nulls, true)
			}
		})
	}
}

func TestCollapseSpace(t *testing.T) {
	for in, want := range map[string]string{
		"plain words":        "plain words",
		"  lead":             "lead",
		"trail ":             "trail",
		"in  side":           "in side",
		"\ttab\nnl\r\n":      "tab nl",
		"nb\u00a0sp\u2003em": "nb sp em",
		"   ":                "",
		"":                   "",
		"é  ü":               "é ü",
	} {
		got, _ := collapseSpace(in)
		require.Equal(t, want, got, "%q", in)
	}
	require.EqualValues(t, 3, countTokens(" a  b\u00a0c "))
	require.EqualValues(t, 0, countTokens(" \t"))
}
