// Package datasettest reads a dataset folder back for tests: every chunk
// its manifest lists is checked against its file, and the records' ids are
// counted, so a test can tell whether each record is there exactly once.
package datasettest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
)

// Read reads the manifest of dataset under out and every chunk it lists,
// Parquet or JSON lines; it checks each file's SHA-256, size and record
// count against its entry, and the manifest's total. It returns how often
// each value of the id column occurs, and the manifest.
func Read(t testing.TB, out, ds string) (map[int64]int, *dataset.Manifest) {
	t.Helper()
	m, err := dataset.ReadManifest(out, ds)
	require.NoError(t, err)
	ids := map[int64]int{}
	var total int64
	for _, ch := range m.Chunks {
		data, err := os.ReadFile(filepath.Join(out, ds, ch.File))
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, ch.SHA256, hex.EncodeToString(sum[:]), ch.File)
		require.EqualValues(t, len(data), ch.Bytes, ch.File)
		var got []int64
		switch ch.Format {
		case "parquet":
			got = ParquetIDs(t, data, ch.File)
		case "jsonl":
			got = jsonlIDs(t, data, ch.File)
		default:
			t.Fatalf("chunk %s: format %q", ch.File, ch.Format)
		}
		require.EqualValues(t, ch.Records, len(got), ch.File)
		for _, id := range got {
			ids[id]++
		}
		total += ch.Records
	}
	require.Equal(t, m.Records, total)
	return ids, m
}

// ReadAll is Read that also checks that the dataset's folder holds no file
// the manifest does not list.
func ReadAll(t testing.TB, out, ds string) (map[int64]int, *dataset.Manifest) {
	t.Helper()
	ids, m := Read(t, out, ds)
	listed := map[string]bool{dataset.ManifestFile: true}
	for _, ch := range m.Chunks {
		listed[ch.File] = true
	}
	files, err := os.ReadDir(filepath.Join(out, ds))
	require.NoError(t, err)
	for _, f := range files {
		require.True(t, listed[f.Name()], "%s is not in the manifest", f.Name())
	}
	return ids, m
}

// ParquetIDs returns the id column of the Parquet file data (named name in
// failures).
func ParquetIDs(t testing.TB, data []byte, name string) []int64 {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err, name)
	col, ok := f.Schema().Lookup("id")
	require.True(t, ok, "no id column in %s", name)
	var ids []int64
	buf := make([]parquet.Row, 512)
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				ids = append(ids, r[col.ColumnIndex].Int64())
			}
			if err == io.EOF {
				break
			}
			require.NoError(t, err, name)
		}
		require.NoError(t, rows.Close(), name)
	}
	return ids
}

// jsonlIDs returns the id of every line of the JSON lines file data.
func jsonlIDs(t testing.TB, data []byte, name string) []int64 {
	t.Helper()
	var ids []int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var rec struct {
			ID int64 `json:"id"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), name)
		ids = append(ids, rec.ID)
	}
	require.NoError(t, sc.Err(), name)
	return ids
}
