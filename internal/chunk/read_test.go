package chunk

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// A chunk file reads back as the records Write was given, in both formats.
func TestReadFileGivesBackWhatWriteWrote(t *testing.T) {
	batches := parquetBatches()
	ts := &wire.RecordBatch{SourceID: "c", Rows: 3, Columns: []wire.Column{
		{Name: "at", Type: wire.TypeTimestamp, Ints: []int64{1714566600250000, 0, -5}, Nulls: []bool{false, true, false}},
		{Name: "text", Type: wire.TypeString, Strings: []string{"line\nbreak \"quoted\"", "", "é"}},
	}}
	batches = append(batches, ts)
	var schema []wire.Field
	for _, b := range batches {
		schema = MergeSchema(schema, SchemaOf(b))
	}
	for _, f := range []Format{Parquet, JSONL} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			n, err := Write(&buf, f, schema, batches)
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "chunk"+f.Ext())
			require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))

			got, err := ReadFile(path, f, schema)
			require.NoError(t, err)
			require.EqualValues(t, n, got.Rows)
			for i, fl := range schema {
				require.Equal(t, fl.Name, got.Columns[i].Name)
				require.Equal(t, fl.Type, got.Columns[i].Type)
			}
			for r := range got.Rows {
				for i, fl := range schema {
					want := recordValue(schema, batches, r, fl.Name)
					if v, ok := want.(float64); ok && math.IsNaN(v) && f == JSONL {
						want = nil // JSON has no NaN: written as null
					}
					have := got.Columns[i].Value(r)
					if v, ok := want.(float64); ok && math.IsNaN(v) {
						require.True(t, math.IsNaN(have.(float64)), "row %d %s", r, fl.Name)
						continue
					}
					require.Equal(t, want, have, "row %d column %s", r, fl.Name)
				}
			}
		})
	}
}

// A file that is not a chunk of the schema is an error that names it.
func TestReadFileRefusesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chunk.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"n":"x"}`+"\n"), 0o644))
	_, err := ReadFile(path, JSONL, fields("n", "int"))
	require.ErrorContains(t, err, `line 1: column "n"`)
	_, err = ReadFile(path, Parquet, fields("n", "int"))
	require.ErrorContains(t, err, path)
	_, err = ReadFile(filepath.Join(dir, "missing.parquet"), Parquet, fields("n", "int"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
