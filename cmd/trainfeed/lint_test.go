package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// lint names every bad sources line and spec with its file and line, and
// exits 1; a clean set exits 0.
func TestLint(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"sources.txt":        "a.csv\n{\"url\": \"x.csv\", \"colour\": 1}\n\n{\"url\": \"b.csv\", \"format\": \"jsno\"}\n",
		"good.txt":           "a.csv\nhttps://example.com/b.jsonl\n",
		"specs/reviews.yaml": "steps:\n  - cast: {stars: decimal}\n",
		"specs/broken.yaml":  "steps:\n  - trim: [text\n",
		"specs/ok.yaml":      "steps:\n  - trim: [text]\n",
		"clean/ok.json":      `{"steps": [{"lower": ["name"]}]}`,
	})
	out, code := trainfeed(t, dir, "lint", "--sources", "sources.txt", "--transforms", "specs")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "sources.txt:2: not a source object: json: unknown field \"colour\"")
	require.Contains(t, out, "sources.txt:4: unknown format \"jsno\"")
	require.Contains(t, out, filepath.Join("specs", "reviews.yaml")+": step 1 (cast): column \"stars\": unknown type \"decimal\"")
	require.Contains(t, out, filepath.Join("specs", "broken.yaml")+": yaml:")
	require.NotContains(t, out, "ok.yaml")
	require.Contains(t, out, "4 problems")

	out, code = trainfeed(t, dir, "lint", "--sources", "good.txt", "--transforms", "clean")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "ok: 3 sources and specs")
}
