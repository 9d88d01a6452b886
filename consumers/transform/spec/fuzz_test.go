package spec

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// FuzzSpec applies specs made of random steps to parsed batches: a step may
// fail with a *StepError, never otherwise, and every batch that comes out is
// well formed, valid UTF-8, and no longer than what went in.
func FuzzSpec(f *testing.F) {
	f.Add([]byte("a,b,c\n1,x y,2024-01-01\n2,Z,\n3,x y,2024-02-01\n"), []byte{0, 17, 34, 51, 68, 85}, "x y", int64(2))
	f.Add([]byte("{\"a\":1.5,\"b\":true}\n{\"a\":\"n/a\",\"c\":\"2024-01-01T00:00:00Z\"}\n"), []byte{7, 9, 11, 13, 200}, "b", int64(-1))
	f.Add([]byte("k\n5\n5\n007\n"), []byte{13, 12, 3}, "5", int64(1000))
	ops := []string{"==", "!=", "<", "<=", ">", ">=", "in", "not_in"}
	types := []wire.Type{wire.TypeInt, wire.TypeFloat, wire.TypeBool, wire.TypeString, wire.TypeTimestamp}
	f.Fuzz(func(t *testing.T, data, steps []byte, word string, num int64) {
		var batches []*parse.Batch
		_, err := parse.Parse(context.Background(), bytes.NewReader(data), parse.ParseOptions{MaxBatchRows: 2}, func(b *parse.Batch) error {
			batches = append(batches, b)
			return nil
		})
		if err != nil || len(batches[0].Columns) == 0 || len(steps) > 12 {
			return
		}
		names := make([]string, len(batches[0].Columns))
		for i, c := range batches[0].Columns {
			names[i] = c.Name
		}
		var value any = word
		if num%2 == 0 {
			value = num
		}
		spec := &Spec{Optional: []string{word}}
		for _, s := range steps {
			col := names[int(s/16)%len(names)]
			var st Step
			switch s % 16 {
			case 0:
				st.Select = []string{col, word}
			case 1:
				st.Drop = []string{col}
			case 2:
				st.Rename = map[string]string{col: word + "_"}
			case 3:
				st.Cast = map[string]wire.Type{col: types[uint64(num)%uint64(len(types))]}
			case 4:
				st.Lower = []string{col}
			case 5:
				st.Trim = []string{col}
			case 6:
				st.DropEmpty = []string{col}
			case 7:
				op := ops[uint64(num)%uint64(len(ops))]
				st.Filter = &Filter{Column: col, Op: op}
				if op == "in" || op == "not_in" {
					st.Filter.Values = []any{value, word}
				} else {
					st.Filter.Value = value
				}
			case 8:
				st.Log1p = &Derive{Column: col}
			case 9:
				st.Tokens = &Derive{Column: col, As: word}
			case 10:
				st.Length = &Derive{Column: col}
			case 11:
				st.HashBucket = &HashBucket{Column: col, Buckets: int(uint64(num)%1000) + 1}
			case 12:
				st.OneHot = &OneHot{Column: col, Values: []string{word, "x"}}
			case 13:
				st.Dedupe = []string{col}
			default:
				st.Func = "identity"
			}
			spec.Steps = append(spec.Steps, st)
		}
		prog, err := Compile(spec, map[string]Func{"identity": func(_ context.Context, b *parse.Batch) (*parse.Batch, error) { return b, nil }})
		if err != nil {
			return // a spec Validate refuses: a bad name, a bool ordered
		}
		r := prog.NewRun(context.Background())
		for _, b := range batches {
			in := b.Rows
			out, err := r.Apply(b)
			if err != nil {
				var se *StepError
				require.True(t, errors.As(err, &se), "%v is not a *StepError", err)
				return
			}
			require.NoError(t, checkBatch(out))
			require.LessOrEqual(t, out.Rows, in)
			for _, c := range out.Columns {
				require.True(t, utf8.ValidString(c.Name))
				for _, s := range c.Strings {
					require.True(t, utf8.ValidString(s), "column %q: %q", c.Name, s)
				}
			}
		}
	})
}
