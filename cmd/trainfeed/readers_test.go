package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/readertest"
)

// snippet matches a reader snippet of docs/manifest.md: the marker, then
// the fenced block after it.
var snippet = regexp.MustCompile("(?s)<!-- run: (\\w+) -->\\n```\\w+\\n(.*?)```")

// Each reader snippet of docs/manifest.md runs as written, from the folder
// holding out/, on the dataset the README's first command writes, and
// reads every record with the manifest's types.
func TestManifestReaderSnippetsRun(t *testing.T) {
	doc, err := os.ReadFile("../../docs/manifest.md")
	require.NoError(t, err)
	snippets := map[string]string{}
	for _, m := range snippet.FindAllStringSubmatch(string(doc), -1) {
		snippets[m[1]] = m[2]
	}
	require.Len(t, snippets, 3, "duckdb, polars and pandas")

	parquetDir, jsonlDir := t.TempDir(), t.TempDir()
	for dir, format := range map[string]string{parquetDir: "parquet", jsonlDir: "jsonl"} {
		stdout, code := trainfeed(t, "../..", "run", "--sources", "examples/sources.txt", "--out", filepath.Join(dir, "out"),
			"--dataset", "clicks", "--format", format, "-q")
		require.Equal(t, 0, code, stdout)
	}

	res := readertest.DuckDBIn(t, parquetDir, snippets["duckdb"])
	require.Equal(t, [][]any{{"2000", "50"}}, res.Rows)

	node := exec.Command("node", "-e", snippets["polars"])
	node.Dir = parquetDir
	node.Env = append(os.Environ(), "NODE_PATH="+readertest.NodeModules(t))
	out, err := node.CombinedOutput()
	require.NoError(t, err, "polars snippet: %s", out)
	require.Equal(t, "2000 DataType(Int64),DataType(String),DataType(String),DataType(Int64),DataType(Bool)", strings.TrimSpace(string(out)))

	python := "/usr/bin/python3" // Debian's, where python3-pandas installs
	cmd := exec.Command(python, "-c", snippets["pandas"])
	cmd.Dir = jsonlDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "pandas snippet (Debian: apt-get install python3-pandas): %s", stderr.String())
	require.Equal(t, "2000 Int64,string,string,Int64,boolean", strings.TrimSpace(stdout.String()))
}
