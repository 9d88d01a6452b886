package combine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// ManifestFile is the name of a dataset's manifest inside its folder.
const ManifestFile = "manifest.json"

// Manifest is what a trainer reads: the dataset's schema and its committed
// chunks, in commit order. It is replaced atomically after every commit; a
// chunk file that is not listed here is not part of the dataset.
type Manifest struct {
	Dataset   string        `json:"dataset"`
	Format    string        `json:"format"`
	Schema    []wire.Field  `json:"schema"`
	SchemaFP  string        `json:"schema_fp"`
	Records   int64         `json:"records"`
	Bytes     int64         `json:"bytes"`
	Chunks    []*wire.Chunk `json:"chunks"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// NewManifest returns an empty manifest of dataset.
func NewManifest(dataset string) *Manifest {
	return &Manifest{Dataset: dataset, Schema: []wire.Field{}, Chunks: []*wire.Chunk{}}
}

// Add appends a committed chunk (in sequence order) and updates the schema
// and totals. Commits without records hold no file and are not listed.
func (m *Manifest) Add(ch *wire.Chunk) {
	if ch.Records == 0 {
		return
	}
	m.Chunks = append(m.Chunks, ch)
	m.Schema = chunk.MergeSchema(m.Schema, ch.Schema)
	m.SchemaFP = chunk.Fingerprint(m.Schema)
	m.Records += ch.Records
	m.Bytes += ch.Bytes
	m.Format = ch.Format
}

// LastSeq returns the sequence number of the manifest's last chunk, or 0.
func (m *Manifest) LastSeq() uint64 {
	if len(m.Chunks) == 0 {
		return 0
	}
	return m.Chunks[len(m.Chunks)-1].Seq
}

// WriteManifest replaces <out>/<dataset>/manifest.json atomically.
func WriteManifest(out string, m *Manifest) error {
	m.UpdatedAt = time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(out, m.Dataset)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ManifestFile), append(data, '\n'))
}

// ReadManifest reads the manifest of dataset from out.
func ReadManifest(out, dataset string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(out, dataset, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", dataset, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", dataset, err)
	}
	return &m, nil
}

// writeFileAtomic writes data to path through a temp file in the same
// folder: write, fsync, rename, fsync the folder.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
