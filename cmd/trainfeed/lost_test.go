package main

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
)

// writeFiles writes each file of files, by name, into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	}
}

// run names each source that lost rows, with its counts and first
// reasons; one that lost most of them fails, unless --max-bad-rows allows.
func TestRunCountsLostRows(t *testing.T) {
	dir := t.TempDir()
	most := "a,b\n"
	for range 10 {
		most += "1,x,y\n"
	}
	most += "1,2\n"
	writeFiles(t, dir, map[string]string{
		"some.csv":    "a,b\n1,2\n3,4,5\n6,7\n8\n",
		"most.csv":    most,
		"sources.txt": "some.csv\nmost.csv\n",
	})
	out := filepath.Join(dir, "out")
	stdout, code := trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--dataset", "lossy", "-q")
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stdout, "sources: 1 ok, 1 failed (of 2)")
	require.Contains(t, stdout, "records: 2 in 1 chunks")
	require.Contains(t, stdout, "; 2 malformed rows skipped")
	require.Contains(t, stdout, "  some.csv\n    skipped 2 of 4 rows read (50.0%)\n      line 3: wrong number of fields: got 3, want 2\n      line 5: wrong number of fields: got 1, want 2\n")
	require.Contains(t, stdout, "too many malformed rows: 10 of 11 rows read so far were malformed and skipped, more than the limit of 50%; first: line 2: wrong number of fields: got 3, want 2")

	m, err := dataset.ReadManifest(out, "lossy")
	require.NoError(t, err)
	require.Len(t, m.Chunks, 1)
	require.Equal(t, 2, m.Chunks[0].Parts[0].Skipped)
	require.Len(t, m.Chunks[0].Parts[0].Skips, 2)

	out = filepath.Join(dir, "out2")
	stdout, code = trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--dataset", "lossy", "-q", "--max-bad-rows", "100%")
	require.Equal(t, 0, code, stdout)
	require.Contains(t, stdout, "sources: 2 ok, 0 failed (of 2)")
	require.Contains(t, stdout, "  most.csv\n    skipped 10 of 11 rows read (90.9%)\n")

	_, code = trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--max-bad-rows", "0")
	require.Equal(t, 2, code)
}

// A record over the message size limit fails its source, and the reason in
// run's summary carries the records path that would read it as records.
func TestRunNamesTheRecordsPathOfAnOverlongDocument(t *testing.T) {
	dir := t.TempDir()
	var doc strings.Builder
	doc.WriteString(`{"meta": {"page": 1}, "data": {"items": [`)
	for i := range 20_000 {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `{"id": %d, "text": "%s"}`, i, strings.Repeat("x", 50))
	}
	doc.WriteString("]}}\n")
	writeFiles(t, dir, map[string]string{"api.json": doc.String(), "sources.txt": "api.json\n"})
	stdout, code := trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", filepath.Join(dir, "out"), "--dataset", "api", "-q")
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stdout, "over the message size limit of 1048576 bytes; the body is one JSON document read as one record: "+
		"to read the array of objects in it as records, give the source a records path: records=data.items")
}

// A zip archive and a PDF fail with what they are and write nothing, even
// when their names say CSV.
func TestRunRefusesArchivesAndDocuments(t *testing.T) {
	dir := t.TempDir()
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.Create("data.csv")
	require.NoError(t, err)
	_, err = w.Write([]byte("a,b\n1,2\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	pdf := "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
	writeFiles(t, dir, map[string]string{
		"export.csv":  zipped.String(),
		"report.csv":  pdf,
		"sources.txt": "export.csv\nreport.csv\n",
	})
	out := filepath.Join(dir, "out")
	stdout, code := trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--dataset", "docs", "-q")
	require.Equal(t, 1, code, stdout)
	require.Contains(t, stdout, "sources: 0 ok, 2 failed (of 2)")
	require.Contains(t, stdout, "transform export.csv: line 1: not CSV, TSV or JSON: the body is a zip archive")
	require.Contains(t, stdout, "transform report.csv: line 1: not CSV, TSV or JSON: the body is a PDF document")
	require.NoDirExists(t, filepath.Join(out, "docs"))
}
