package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dataset"
)

// --chunk-bytes cuts chunks by size as --chunk-records does by count,
// whichever comes first (a batch is never split); every record is there.
func TestRunChunkBytes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	var sources strings.Builder
	for f := range 6 {
		var b strings.Builder
		b.WriteString("id,text\n")
		for i := range 500 {
			fmt.Fprintf(&b, "%d,%s\n", f*500+i, strings.Repeat("x", 100))
		}
		name := fmt.Sprintf("part-%d.csv", f)
		files[name] = b.String()
		sources.WriteString(name + "\n")
	}
	files["sources.txt"] = sources.String()
	writeFiles(t, dir, files)
	out := filepath.Join(dir, "out")
	stdout, code := trainfeed(t, dir, "run", "--sources", "sources.txt", "--out", out, "--dataset", "sized",
		"--chunk-bytes", "64KiB", "-q")
	require.Equal(t, 0, code, stdout)
	m, err := dataset.ReadManifest(out, "sized")
	require.NoError(t, err)
	require.EqualValues(t, 3000, m.Records)
	// Six batches of about 50 KiB: a chunk closes at the batch that takes
	// it past 64 KiB, so no chunk holds more than two.
	require.GreaterOrEqual(t, len(m.Chunks), 3)
	for _, ch := range m.Chunks {
		require.LessOrEqual(t, ch.Records, int64(1000), "chunk %d", ch.Seq)
	}
}
