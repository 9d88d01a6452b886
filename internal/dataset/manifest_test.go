package dataset_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A manifest written again after Add (which re-encodes only the new chunks)
// reads back as the whole manifest, as valid JSON, one line per chunk.
func TestWriteManifestIncremental(t *testing.T) {
	out := t.TempDir()
	m := dataset.NewManifest("ds")
	mk := func(seq uint64, schema ...wire.Field) *wire.Chunk {
		return &wire.Chunk{
			Seq: seq, File: "chunk-" + string(rune('a'+seq)), Format: "jsonl", Records: int64(seq * 10), Bytes: int64(seq * 100),
			SHA256: "abcd", Schema: schema, SchemaFP: chunk.Fingerprint(schema), CreatedAt: time.Unix(int64(seq), 0).UTC(),
			Parts: []wire.PartRef{{SourceID: "s\"1\n", URL: "http://x/<a>", Rows: int(seq * 10), Last: true}},
		}
	}
	id := wire.Field{Name: "id", Type: wire.TypeInt}
	name := wire.Field{Name: "name", Type: wire.TypeString}
	for _, tt := range []struct {
		add        []*wire.Chunk
		wantChunks int
		wantSchema []wire.Field
	}{
		{nil, 0, []wire.Field{}},
		{[]*wire.Chunk{mk(1, id)}, 1, []wire.Field{id}},
		{[]*wire.Chunk{mk(2, id), {Seq: 3}, mk(4, id, name)}, 3, []wire.Field{id, name}},
	} {
		for _, ch := range tt.add {
			m.Add(ch)
		}
		require.NoError(t, dataset.WriteManifest(out, m))
		data, err := os.ReadFile(filepath.Join(out, "ds", dataset.ManifestFile))
		require.NoError(t, err)
		require.True(t, json.Valid(data), string(data))
		got, err := dataset.ReadManifest(out, "ds")
		require.NoError(t, err)
		require.Len(t, got.Chunks, tt.wantChunks)
		require.Equal(t, tt.wantSchema, got.Schema)
		require.Equal(t, chunk.Fingerprint(tt.wantSchema), got.SchemaFP)
		var records int64
		for i, ch := range got.Chunks {
			require.Equal(t, m.Chunks[i].Seq, ch.Seq)
			require.Equal(t, m.Chunks[i].Parts, ch.Parts)
			require.Equal(t, m.Chunks[i].CreatedAt, ch.CreatedAt)
			records += ch.Records
		}
		require.Equal(t, records, got.Records)
		require.Equal(t, m.Bytes, got.Bytes)
		require.Equal(t, "ds", got.Dataset)
	}
}
