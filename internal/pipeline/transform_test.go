package pipeline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/combine"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/proctest"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
	"github.com/trainfeed/trainfeed/producers"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct{ proctest.Buffer }

// records returns the JSON log records with message msg.
func (b *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// gzipBomb returns a small gzip body that expands to n bytes of CSV rows.
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	_, err = io.WriteString(zw, "id,name\n")
	require.NoError(t, err)
	block := bytes.Repeat([]byte("0,0\n"), 1<<16)
	for w := 0; w < n; w += len(block) {
		_, err := zw.Write(block)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestJobMixedSources runs JSON lines, gzip, zstd, a JSON array, a CSV with
// a malformed row, Latin-1 text and a gzip bomb through one job: every good
// row arrives once, the malformed row is reported with its line, the bomb is
// refused with a reason, and no chunk holds invalid UTF-8.
func TestJobMixedSources(t *testing.T) {
	root := t.TempDir()
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), data, 0o644))
	}
	want := map[int64]string{} // id -> name
	var jsonl, csvText, arr, zst, latin strings.Builder
	for i := range 500 {
		id := int64(i)
		want[id] = fmt.Sprintf("json %d", i)
		fmt.Fprintf(&jsonl, `{"id":%d,"name":%q,"when":"2024-05-01T12:00:%02dZ"}`+"\n", id, want[id], i%60)
	}
	write("a.jsonl", []byte(jsonl.String()))

	csvText.WriteString("id,name\n")
	for i := range 500 {
		id := int64(1000 + i)
		want[id] = fmt.Sprintf("csv %d", i)
		fmt.Fprintf(&csvText, "%d,%s\n", id, want[id])
	}
	write("b.csv.gz", gz(t, []byte(csvText.String())))

	arr.WriteString("[\n")
	for i := range 300 {
		id := int64(2000 + i)
		want[id] = fmt.Sprintf("array %d", i)
		fmt.Fprintf(&arr, "  {\"id\": %d, \"name\": %q},\n", id, want[id])
	}
	arr.WriteString("  {\"id\": 2300, \"name\": \"last\"}\n]\n")
	want[2300] = "last"
	write("c.json", []byte(arr.String()))

	// A CSV with one malformed row (a field too many) on line 5.
	malformed := "id,name\n3000,one\n3001,two\n3002,three\n9999,bad,row\n3003,four\n"
	for id, name := range map[int64]string{3000: "one", 3001: "two", 3002: "three", 3003: "four"} {
		want[id] = name
	}
	write("d.csv", []byte(malformed))

	latin.WriteString("id,name\n")
	for i := range 100 {
		id := int64(4000 + i)
		want[id] = fmt.Sprintf("Müller-Lüdenscheidt %d €", i)
		fmt.Fprintf(&latin, "%d,M\xfcller-L\xfcdenscheidt %d \x80\n", id, i)
	}
	write("e.csv", []byte(latin.String()))

	zst.WriteString("id,name\n")
	for i := range 200 {
		id := int64(5000 + i)
		want[id] = fmt.Sprintf("zstd %d", i)
		fmt.Fprintf(&zst, "%d,%s\n", id, want[id])
	}
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf)
	require.NoError(t, err)
	_, err = zw.Write([]byte(zst.String()))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	write("f.csv.zst", zbuf.Bytes())

	bombBody := gzipBomb(t, 80<<20) // past the 64 MiB below which the ratio is not checked
	require.Less(t, len(bombBody), 1<<20)
	write("bomb.csv.gz", bombBody)

	out := t.TempDir()
	logs := &syncBuffer{}
	job := &pipeline.Job{
		StoreDir: filepath.Join(out, ".jetstream"), Dataset: "mixed", Topology: topology.DefaultConfig(),
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	job.Stages.Fetch.Root = root
	job.Stages.Combine = combine.DefaultConfig()
	job.Stages.Combine.Out = out
	job.Stages.Combine.Format = chunk.Parquet
	job.Stages.Combine.MaxAge = 200 * time.Millisecond
	sources := "a.jsonl\nb.csv.gz\nc.json\nd.csv\ne.csv\nf.csv.zst\nbomb.csv.gz\n"
	entries, err := producers.ReadSources(strings.NewReader(sources))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := job.Run(ctx, entries)
	require.NoError(t, err)
	require.Equal(t, 6, sum.OK, "%+v", sum.Outcomes)
	require.Equal(t, 1, sum.Failed)
	bomb := sum.Outcomes[0]
	require.True(t, bomb.Failed)
	require.Contains(t, bomb.URL, "bomb.csv.gz")
	require.Equal(t, "transform", bomb.Stage)
	require.Contains(t, bomb.Reason, "decompression limit exceeded: gzip body expands more than 200 times")
	require.Contains(t, bomb.Reason, "refused as a decompression bomb")
	require.EqualValues(t, len(want), sum.Records)

	// The malformed row is reported with its source and line.
	skipped := logs.records(t, "skipped malformed row")
	require.Len(t, skipped, 1, "%v", skipped)
	require.Contains(t, skipped[0]["url"], "d.csv")
	require.EqualValues(t, 5, skipped[0]["line"])
	require.Equal(t, "wrong number of fields: got 3, want 2", skipped[0]["reason"])

	// Every good row, once, with its text intact and valid UTF-8.
	got := readParquetDataset(t, out, "mixed")
	require.Len(t, got, len(want))
	for id, name := range want {
		rows := got[id]
		require.Len(t, rows, 1, "id %d", id)
		require.Equal(t, name, rows[0]["name"], "id %d", id)
	}
	m, err := dataset.ReadManifest(out, "mixed")
	require.NoError(t, err)
	types := map[string]wire.Type{}
	for _, f := range m.Schema {
		types[f.Name] = f.Type
	}
	require.Equal(t, map[string]wire.Type{"id": wire.TypeInt, "name": wire.TypeString, "when": wire.TypeTimestamp}, types)
	require.Equal(t, time.Date(2024, 5, 1, 12, 0, 7, 0, time.UTC).UnixMicro(), got[7][0]["when"])
}

// readParquetDataset reads every chunk of a dataset and returns its rows by
// id, each row by column name: int64 for ints and timestamps, string for
// strings, which it checks are valid UTF-8.
func readParquetDataset(t *testing.T, out, ds string) map[int64][]map[string]any {
	t.Helper()
	m, err := dataset.ReadManifest(out, ds)
	require.NoError(t, err)
	rows := map[int64][]map[string]any{}
	for _, ch := range m.Chunks {
		data, err := os.ReadFile(filepath.Join(out, ds, ch.File))
		require.NoError(t, err)
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		leaves := map[int]string{}
		for _, field := range f.Schema().Fields() {
			leaf, ok := f.Schema().Lookup(field.Name())
			require.True(t, ok)
			leaves[leaf.ColumnIndex] = field.Name()
		}
		for _, rg := range f.RowGroups() {
			rr := rg.Rows()
			buf := make([]parquet.Row, 128)
			for {
				n, err := rr.ReadRows(buf)
				for _, row := range buf[:n] {
					rec := map[string]any{}
					for _, v := range row {
						name := leaves[v.Column()]
						switch {
						case v.IsNull():
							rec[name] = nil
						case v.Kind() == parquet.ByteArray:
							s := string(v.ByteArray())
							require.True(t, utf8.ValidString(s), "chunk %s column %s: %q", ch.File, name, s)
							require.NotContains(t, s, "\uFFFD")
							rec[name] = s
						default:
							rec[name] = v.Int64()
						}
					}
					rows[rec["id"].(int64)] = append(rows[rec["id"].(int64)], rec)
				}
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
			}
			require.NoError(t, rr.Close())
		}
	}
	return rows
}

// TestJobTransformSpec runs a spec end to end: only the kept, transformed
// rows reach the dataset, and a spec naming a column the data lacks fails
// the source with the column's name.
func TestJobTransformSpec(t *testing.T) {
	root := t.TempDir()
	var b strings.Builder
	b.WriteString("id,Text,score\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "%d,  Row   %d TEXT ,%d\n", i, i, i%10)
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "good.csv"), []byte(b.String()), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "other.csv"), []byte("id,nope\n1,2\n"), 0o644))
	sp, err := spec.ParseSpec([]byte(`
steps:
  - rename: {Text: text}
  - trim: [text]
  - lower: [text]
  - filter: {column: score, op: ">=", value: 5}
  - tokens: {column: text, as: words}
  - select: [id, text, words]
`), "yaml")
	require.NoError(t, err)

	out := t.TempDir()
	job := &pipeline.Job{StoreDir: filepath.Join(out, ".jetstream"), Dataset: "spec", Topology: topology.DefaultConfig(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	job.Stages.Fetch.Root = root
	job.Stages.Transform.Specs = map[string]*spec.Spec{"spec": sp}
	job.Stages.Combine = combine.DefaultConfig()
	job.Stages.Combine.Out = out
	job.Stages.Combine.Format = chunk.Parquet
	job.Stages.Combine.MaxAge = 200 * time.Millisecond
	entries, err := producers.ReadSources(strings.NewReader("good.csv\nother.csv\n"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := job.Run(ctx, entries)
	require.NoError(t, err)
	require.Equal(t, 1, sum.OK)
	require.Equal(t, 1, sum.Failed)
	require.Contains(t, sum.Outcomes[0].Reason, `transform step 1 (rename): no column "Text"`)
	require.EqualValues(t, 500, sum.Records)

	got := readParquetDataset(t, out, "spec")
	require.Len(t, got, 500)
	for id, rows := range got {
		require.GreaterOrEqual(t, id%10, int64(5))
		require.Equal(t, fmt.Sprintf("row %d text", id), rows[0]["text"])
		require.EqualValues(t, 3, rows[0]["words"])
	}
}
