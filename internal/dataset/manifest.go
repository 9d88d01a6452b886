// Package dataset is what a trainfeed dataset is: a folder of chunk files,
// each named by its commit sequence and content; the manifest.json that
// lists them with the dataset's schema and its versions; and the rules by
// which that one schema evolves across chunks (Evolve, Fit, WidenToFit).
// The combine stage writes datasets with it, its Follower (trainfeed
// follow) mirrors one through NATS, and the tests and any reader read them
// with it.
package dataset

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// ManifestFile is the name of a dataset's manifest inside its folder.
const ManifestFile = "manifest.json"

// Manifest is what a trainer reads: the dataset's schema and its committed
// chunks, in commit order. It is replaced atomically after commits; a chunk
// file that is not listed here is not part of the dataset.
type Manifest struct {
	Dataset string `json:"dataset"`
	// Ledger names the manifest bucket that wrote this dataset (its
	// stream and when that was created): a combiner leaves a folder whose
	// manifest names another ledger alone until it adopts it.
	Ledger   string       `json:"ledger,omitempty"`
	Format   string       `json:"format"`
	Schema   []wire.Field `json:"schema"`
	SchemaFP string       `json:"schema_fp"`
	// SchemaVersions lists every schema the dataset had, oldest first: a
	// version starts at the chunk seq that first used it.
	SchemaVersions []SchemaVersion `json:"schema_versions,omitempty"`
	Records        int64           `json:"records"`
	Bytes          int64           `json:"bytes"`
	Chunks         []*wire.Chunk   `json:"chunks"`
	UpdatedAt      time.Time       `json:"updated_at"`

	// encoded holds the JSON of Chunks[:len(encoded)], so that writing a
	// growing manifest again encodes only the chunks added since.
	encoded [][]byte
}

// SchemaVersion is one of a dataset's schemas, from the chunk FromSeq on.
type SchemaVersion struct {
	Version  int          `json:"version"`
	FromSeq  uint64       `json:"from_seq"`
	SchemaFP string       `json:"schema_fp"`
	Schema   []wire.Field `json:"schema"`
}

// SchemaOf returns the schema a chunk of the manifest was written with.
func (m *Manifest) SchemaOf(ch *wire.Chunk) []wire.Field {
	for _, v := range m.SchemaVersions {
		if v.Version == ch.SchemaVersion {
			return v.Schema
		}
	}
	return m.Schema
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
	m.noteSchema(ch)
	m.Records += ch.Records
	m.Bytes += ch.Bytes
	m.Format = ch.Format
}

// Replace puts a rewritten chunk in the place of the listed chunk of the
// same seq and reports whether one was listed.
func (m *Manifest) Replace(ch *wire.Chunk) bool {
	i, found := slices.BinarySearchFunc(m.Chunks, ch.Seq, func(e *wire.Chunk, seq uint64) int { return cmp.Compare(e.Seq, seq) })
	if !found {
		return false
	}
	m.Bytes += ch.Bytes - m.Chunks[i].Bytes
	m.Records += ch.Records - m.Chunks[i].Records
	m.Chunks[i] = ch
	if i < len(m.encoded) {
		m.encoded[i] = nil
	}
	m.noteSchema(ch)
	return true
}

// noteSchema takes in the schema versions a listed chunk tells of: the one
// it was committed in, which starts at the first chunk committed in it,
// and, for a rewritten chunk, the one it is written in now.
func (m *Manifest) noteSchema(ch *wire.Chunk) {
	if ch.SchemaVersion == 0 {
		m.Schema = chunk.MergeSchema(m.Schema, ch.Schema)
		return
	}
	if ch.CommittedVersion > 0 {
		m.noteVersion(ch.CommittedVersion, ch.CommittedSchema, ch.Seq)
		m.noteVersion(ch.SchemaVersion, ch.Schema, 0)
	} else {
		m.noteVersion(ch.SchemaVersion, ch.Schema, ch.Seq)
	}
	last := m.SchemaVersions[len(m.SchemaVersions)-1]
	m.Schema = last.Schema
}

// noteVersion lists version with its schema, in version order, and makes
// it start at seq if no chunk committed in it is listed before (seq 0: a
// chunk rewritten in it, which does not start it).
func (m *Manifest) noteVersion(version int, schema []wire.Field, seq uint64) {
	i, found := slices.BinarySearchFunc(m.SchemaVersions, version, func(v SchemaVersion, n int) int { return v.Version - n })
	if !found {
		m.SchemaVersions = slices.Insert(m.SchemaVersions, i, SchemaVersion{
			Version: version, SchemaFP: chunk.Fingerprint(schema), Schema: slices.Clone(schema),
		})
	}
	if v := &m.SchemaVersions[i]; seq > 0 && (v.FromSeq == 0 || seq < v.FromSeq) {
		v.FromSeq = seq
	}
}

// LastSeq returns the sequence number of the manifest's last chunk, or 0.
func (m *Manifest) LastSeq() uint64 {
	if len(m.Chunks) == 0 {
		return 0
	}
	return m.Chunks[len(m.Chunks)-1].Seq
}

// WriteManifest replaces <out>/<dataset>/manifest.json atomically. Writing
// the same Manifest again after Add encodes only the chunks added since.
func WriteManifest(out string, m *Manifest) error {
	m.UpdatedAt = time.Now().UTC()
	m.SchemaFP = chunk.Fingerprint(m.Schema)
	data, err := m.encode()
	if err != nil {
		return err
	}
	dir := filepath.Join(out, m.Dataset)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ManifestFile), data)
}

// encode returns the manifest as JSON: a key per line, one line per chunk.
func (m *Manifest) encode() ([]byte, error) {
	for i, b := range m.encoded {
		if b == nil { // replaced since
			var err error
			if m.encoded[i], err = json.Marshal(m.Chunks[i]); err != nil {
				return nil, err
			}
		}
	}
	for _, ch := range m.Chunks[len(m.encoded):] {
		b, err := json.Marshal(ch)
		if err != nil {
			return nil, err
		}
		m.encoded = append(m.encoded, b)
	}
	size := 512
	for _, b := range m.encoded {
		size += len(b) + 6
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	field := func(key string, v any, last bool) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(buf, "  %q: %s", key, b)
		if !last {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		return nil
	}
	buf.WriteString("{\n")
	for _, f := range []struct {
		key  string
		v    any
		omit bool // empty, and omitempty in the struct's tags
	}{
		{"dataset", m.Dataset, false}, {"ledger", m.Ledger, m.Ledger == ""}, {"format", m.Format, false},
		{"schema", m.Schema, false}, {"schema_fp", m.SchemaFP, false},
		{"schema_versions", m.SchemaVersions, len(m.SchemaVersions) == 0}, {"records", m.Records, false}, {"bytes", m.Bytes, false},
	} {
		if f.omit {
			continue
		}
		if err := field(f.key, f.v, false); err != nil {
			return nil, err
		}
	}
	buf.WriteString(`  "chunks": [`)
	for i, b := range m.encoded {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		buf.Write(b)
	}
	if len(m.encoded) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("],\n")
	if err := field("updated_at", m.UpdatedAt, true); err != nil {
		return nil, err
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
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
	f, err := CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
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
	return SyncDir(dir)
}

// SyncDir fsyncs the folder dir, so that a rename or a new file in it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
