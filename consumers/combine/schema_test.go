package combine_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func isPermanent(err error) bool { return runner.IsPermanent(err) }

func openParquet(t *testing.T, path string) *parquet.File {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err, path)
	return f
}

// readParquet returns the rows of a Parquet file as maps of column name to
// Go value (nil for null).
func readParquet(t *testing.T, path string) []map[string]any {
	t.Helper()
	f := openParquet(t, path)
	var out []map[string]any
	fields := f.Schema().Fields()
	buf := make([]parquet.Row, 64)
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				rec := map[string]any{}
				for _, v := range r {
					name := fields[v.Column()].Name()
					switch {
					case v.IsNull():
						rec[name] = nil
					case v.Kind() == parquet.Int64:
						rec[name] = v.Int64()
					case v.Kind() == parquet.Double:
						rec[name] = v.Double()
					default:
						rec[name] = string(v.ByteArray())
					}
				}
				out = append(out, rec)
			}
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.NoError(t, rows.Close())
	}
	return out
}

// rows builds a batch of ds from columns given as name, type and values.
func rows(source string, cols ...wire.Column) *wire.RecordBatch {
	n := cols[0].Len()
	return &wire.RecordBatch{SourceID: source, Dataset: "ds", URL: "http://x/" + source, Last: true, Rows: n, Columns: cols}
}

func ints(name string, v ...int64) wire.Column {
	return wire.Column{Name: name, Type: wire.TypeInt, Ints: v}
}
func floats(name string, v ...float64) wire.Column {
	return wire.Column{Name: name, Type: wire.TypeFloat, Floats: v}
}
func strs(name string, v ...string) wire.Column {
	return wire.Column{Name: name, Type: wire.TypeString, Strings: v}
}

// parquetTypes returns each column of a Parquet file with its physical
// and logical type, as the file's footer says.
func parquetTypes(t *testing.T, path string) map[string]string {
	t.Helper()
	f := openParquet(t, path)
	types := map[string]string{}
	for _, field := range f.Schema().Fields() {
		typ := field.Type()
		logical := ""
		if lt := typ.LogicalType(); lt != nil {
			logical = lt.String()
		}
		types[field.Name()] = typ.Kind().String() + "/" + logical
	}
	return types
}

// Under MismatchNull a dataset's column keeps the type it first committed
// with in every later chunk: values that convert unchanged are converted,
// others are null and counted; a new column is a new schema version.
func TestOneSchemaPerDataset(t *testing.T) {
	r := newRig(t)
	cfg := combine.DefaultConfig()
	cfg.ChunkRecords = 2
	cfg.Mismatch = combine.MismatchNull
	c, stop := r.start(cfg)

	// Codes with leading zeros first: the column is text, later plain
	// numbers keep their text.
	wait(t, r.handle(c, rows("a", strs("zip", "00501", "02134"), ints("n", 1, 2))))
	wait(t, r.handle(c, rows("b", ints("zip", 501, 90210), floats("n", 3, 4))))
	// A column that appears later; a float that is not an integer, and a
	// code, into int columns: null and counted.
	wait(t, r.handle(c, rows("c", ints("zip", 7, 8), floats("n", 5.5, 6), strs("city", "Holtsville", "Boston"))))
	stop()

	m, err := dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 3)
	want := []wire.Field{{Name: "zip", Type: wire.TypeString}, {Name: "n", Type: wire.TypeInt}, {Name: "city", Type: wire.TypeString}}
	require.Equal(t, want, m.Schema)
	require.Equal(t, []dataset.SchemaVersion{
		{Version: 1, FromSeq: 1, SchemaFP: chunk.Fingerprint(want[:2]), Schema: want[:2]},
		{Version: 2, FromSeq: 3, SchemaFP: chunk.Fingerprint(want), Schema: want},
	}, m.SchemaVersions)
	require.Equal(t, []int{1, 1, 2}, []int{m.Chunks[0].SchemaVersion, m.Chunks[1].SchemaVersion, m.Chunks[2].SchemaVersion})
	require.Equal(t, 0, m.Chunks[1].Parts[0].Nulled, "3.0 and 4.0 are ints unchanged")
	require.Equal(t, 1, m.Chunks[2].Parts[0].Nulled, "5.5 is not an int")

	// Every file types every column the same way.
	first := parquetTypes(t, filepath.Join(r.out, "ds", m.Chunks[0].File))
	for _, ch := range m.Chunks {
		types := parquetTypes(t, filepath.Join(r.out, "ds", ch.File))
		for name, typ := range first {
			require.Equal(t, typ, types[name], "chunk %d column %s", ch.Seq, name)
		}
	}

	var got []map[string]any
	for _, ch := range m.Chunks {
		got = append(got, readParquet(t, filepath.Join(r.out, "ds", ch.File))...)
	}
	require.Equal(t, []map[string]any{
		{"zip": "00501", "n": int64(1)}, {"zip": "02134", "n": int64(2)},
		{"zip": "501", "n": int64(3)}, {"zip": "90210", "n": int64(4)},
		{"zip": "7", "n": nil, "city": "Holtsville"}, {"zip": "8", "n": int64(6), "city": "Boston"},
	}, got)
}

// Under MismatchFail a batch whose values do not fit is dead-lettered with
// the column and the first value, and the rest of the chunk commits.
func TestMismatchFailRejectsTheBatch(t *testing.T) {
	r := newRig(t)
	cfg := combine.DefaultConfig()
	cfg.ChunkRecords = 2
	cfg.Mismatch = combine.MismatchFail
	c, _ := r.start(cfg)

	wait(t, r.handle(c, rows("a", ints("zip", 501, 90210))))
	err := <-r.handle(c, rows("b", strs("zip", "00501", "02134")))
	require.ErrorContains(t, err, `column "zip" of dataset ds is int, but 2 values of this batch are string that int cannot hold unchanged (first "00501")`)
	require.True(t, isPermanent(err))
	wait(t, r.handle(c, rows("c", strs("zip", "7", "8"))))

	m, err := dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 2)
	require.Equal(t, "c", m.Chunks[1].Parts[0].SourceID)
	require.EqualValues(t, 2, m.Chunks[1].Seq, "a commit whose batches were all left out takes no seq")
	require.Equal(t, 0, m.Chunks[1].Parts[0].Nulled, `"7" is an int unchanged`)
}

// A dataset's own policy overrides the default one.
func TestMismatchPolicyPerDataset(t *testing.T) {
	r := newRig(t)
	cfg := combine.DefaultConfig()
	cfg.ChunkRecords = 2
	cfg.Mismatch = combine.MismatchFail
	cfg.MismatchFor = map[string]combine.Mismatch{"ds": combine.MismatchNull}
	c, _ := r.start(cfg)

	wait(t, r.handle(c, rows("a", ints("zip", 501, 90210))))
	wait(t, r.handle(c, rows("b", strs("zip", "00501", "7"))))
	m, err := dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 2)
	require.Equal(t, 1, m.Chunks[1].Parts[0].Nulled)

	cfg.Out, cfg.MismatchFor["ds"] = r.out, "drop"
	require.ErrorContains(t, cfg.Validate(), `type mismatch policy "drop" of dataset ds`)
}

// By default a value that does not fit its column widens the column's
// type: a new schema version, in which the earlier chunks are written
// again, so that every file types every column the same way and every
// value is kept unchanged whichever file a reader takes the schema from.
func TestWideningRewritesEarlierChunks(t *testing.T) {
	for _, format := range []chunk.Format{chunk.Parquet, chunk.JSONL} {
		t.Run(string(format), func(t *testing.T) {
			r := newRig(t)
			cfg := combine.DefaultConfig()
			cfg.ChunkRecords = 2
			cfg.Format = format
			c, stop := r.start(cfg)

			// Plain numbers first: zip and n are ints.
			wait(t, r.handle(c, rows("a", ints("zip", 501, 90210), ints("n", 1, 2))))
			first, err := dataset.ReadManifest(r.out, "ds")
			require.NoError(t, err)
			// Then codes with leading zeros and a fraction: zip widens to
			// string, n to float.
			wait(t, r.handle(c, rows("b", strs("zip", "00501", "02134"), floats("n", 3.5, 4))))
			// A column that appears later.
			wait(t, r.handle(c, rows("c", ints("zip", 7, 8), ints("n", 5, 6), strs("city", "Holtsville", "Boston"))))
			stop()

			m, err := dataset.ReadManifest(r.out, "ds")
			require.NoError(t, err)
			require.Len(t, m.Chunks, 3)
			v1 := []wire.Field{{Name: "zip", Type: wire.TypeInt}, {Name: "n", Type: wire.TypeInt}}
			v2 := []wire.Field{{Name: "zip", Type: wire.TypeString}, {Name: "n", Type: wire.TypeFloat}}
			v3 := append(v2[:2:2], wire.Field{Name: "city", Type: wire.TypeString})
			require.Equal(t, v3, m.Schema)
			require.Equal(t, []dataset.SchemaVersion{
				{Version: 1, FromSeq: 1, SchemaFP: chunk.Fingerprint(v1), Schema: v1},
				{Version: 2, FromSeq: 2, SchemaFP: chunk.Fingerprint(v2), Schema: v2},
				{Version: 3, FromSeq: 3, SchemaFP: chunk.Fingerprint(v3), Schema: v3},
			}, m.SchemaVersions)
			require.Equal(t, first.Chunks[0].File, m.Chunks[0].Replaces, "chunk 1 was written again")
			require.NotEqual(t, first.Chunks[0].File, m.Chunks[0].File)
			require.NoFileExists(t, filepath.Join(r.out, "ds", first.Chunks[0].File), "the replaced file is gone")
			for _, ch := range m.Chunks {
				require.Equal(t, 0, ch.Parts[0].Nulled, "chunk %d", ch.Seq)
			}
			// A new column alone needs no rewrite: chunk 1 is in the version
			// that widened its types.
			require.Equal(t, []int{2, 2, 3}, []int{m.Chunks[0].SchemaVersion, m.Chunks[1].SchemaVersion, m.Chunks[2].SchemaVersion})
			files, err := filepath.Glob(filepath.Join(r.out, "ds", "chunk-*"))
			require.NoError(t, err)
			require.Len(t, files, 3, "one file per chunk")
			umask := syscall.Umask(0)
			syscall.Umask(umask)
			for _, f := range append(files, filepath.Join(r.out, "ds", dataset.ManifestFile)) {
				fi, err := os.Stat(f)
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o644&^umask), fi.Mode().Perm(), "%s is readable by others", f)
			}

			var got []map[string]any
			for _, ch := range m.Chunks {
				path := filepath.Join(r.out, "ds", ch.File)
				b, err := chunk.ReadFile(path, format, v3)
				require.NoError(t, err)
				for row := range b.Rows {
					rec := map[string]any{}
					for i := range b.Columns {
						rec[b.Columns[i].Name] = b.Columns[i].Value(row)
					}
					got = append(got, rec)
				}
				if format == chunk.Parquet {
					types := parquetTypes(t, path)
					require.Equal(t, "BYTE_ARRAY/STRING", types["zip"], "chunk %d", ch.Seq)
					require.Equal(t, "DOUBLE/", types["n"], "chunk %d", ch.Seq)
				}
			}
			require.Equal(t, []map[string]any{
				{"zip": "501", "n": 1.0, "city": nil}, {"zip": "90210", "n": 2.0, "city": nil},
				{"zip": "00501", "n": 3.5, "city": nil}, {"zip": "02134", "n": 4.0, "city": nil},
				{"zip": "7", "n": 5.0, "city": "Holtsville"}, {"zip": "8", "n": 6.0, "city": "Boston"},
			}, got)

			// The rewrite is announced beside the chunk events.
			s, err := r.js.Stream(context.Background(), topology.StreamChunks)
			require.NoError(t, err)
			msg, err := s.GetLastMsgForSubject(context.Background(), topology.RewriteSubject("ds"))
			require.NoError(t, err)
			var ev wire.Chunk
			require.NoError(t, wire.Decode(msg.Data, &ev))
			require.Equal(t, m.Chunks[0].File, ev.File)
		})
	}
}

// A widening whose rewrite gives the same bytes (JSON lines write 1 for
// an int and a float alike) changes only the chunk's entry: its schema
// version, once, and no stray file.
func TestWideningWithTheSameBytes(t *testing.T) {
	r := newRig(t)
	cfg := combine.DefaultConfig()
	cfg.ChunkRecords, cfg.Format = 2, chunk.JSONL
	c, stop := r.start(cfg)
	wait(t, r.handle(c, rows("a", ints("n", 1, 2))))
	wait(t, r.handle(c, rows("b", floats("n", 3.5, 4))))
	stop()
	_, stop = r.start(cfg) // a restart finds nothing behind: no rewrite again
	stop()

	m, err := dataset.ReadManifest(r.out, "ds")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 2)
	require.Equal(t, []int{2, 2}, []int{m.Chunks[0].SchemaVersion, m.Chunks[1].SchemaVersion})
	require.NotEmpty(t, m.Chunks[0].Replaces)
	require.Equal(t, m.Chunks[0].Replaces, m.Chunks[0].File, "the same file, in the new version")
	entries, err := os.ReadDir(filepath.Join(r.out, "ds"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{dataset.ManifestFile, m.Chunks[0].File, m.Chunks[1].File}, names)
}
