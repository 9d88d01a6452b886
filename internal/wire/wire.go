// Package wire holds the messages trainfeed stages exchange over JetStream:
// their msgpack encoding, their versions, and the JSON form a Source may take
// so that any NATS client can publish one. docs/wire.md is the contract.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the wire version this build writes. Decoders accept every
// version up to and including it and refuse newer ones.
const Version = 1

// ErrVersion reports a message written by a newer, unknown wire version.
var ErrVersion = errors.New("unsupported wire version")

// Source describes one thing to ingest: where it lives and which dataset its
// records belong to.
type Source struct {
	V           int               `msgpack:"v" json:"v,omitempty"`
	ID          string            `msgpack:"id" json:"id,omitempty"`
	Dataset     string            `msgpack:"dataset" json:"dataset,omitempty"`
	URL         string            `msgpack:"url" json:"url"`
	Format      string            `msgpack:"format,omitempty" json:"format,omitempty"`
	Headers     map[string]string `msgpack:"headers,omitempty" json:"headers,omitempty"`
	PublishedAt time.Time         `msgpack:"published_at" json:"published_at,omitzero"`
	// Records is the path of keys to the array of records inside a JSON
	// document ("data", "data.items"), for an API that wraps its records;
	// empty: the body is the records. See RecordsPath.
	Records string `msgpack:"records,omitempty" json:"records,omitempty"`
	// Auth, if set, says how the request authenticates beyond Headers.
	Auth *SourceAuth `msgpack:"auth,omitempty" json:"auth,omitempty"`
}

// SourceAuth is how a source's request authenticates.
type SourceAuth struct {
	// Basic is HTTP basic authentication (RFC 7617).
	Basic *BasicAuth `msgpack:"basic,omitempty" json:"basic,omitempty"`
}

// BasicAuth is a user and password for HTTP basic authentication. The
// password should name a secret (${env:NAME}, ${file:NAME}) that the
// fetch stage resolves at request time, as header values may.
type BasicAuth struct {
	User     string `msgpack:"user" json:"user"`
	Password string `msgpack:"password" json:"password"`
}

// Fetched references a downloaded body stored in the bodies object store.
type Fetched struct {
	V           int       `msgpack:"v"`
	SourceID    string    `msgpack:"source_id"`
	Dataset     string    `msgpack:"dataset"`
	URL         string    `msgpack:"url"`
	Format      string    `msgpack:"format,omitempty"`
	Object      string    `msgpack:"object"`
	SHA256      string    `msgpack:"sha256"`
	Size        int64     `msgpack:"size"`
	ContentType string    `msgpack:"content_type,omitempty"`
	FromCache   bool      `msgpack:"from_cache"`
	FetchedAt   time.Time `msgpack:"fetched_at"`
	// PublishedAt is when the source was published, for freshness: its
	// own published_at, else when the sources stream stored it.
	PublishedAt time.Time `msgpack:"published_at,omitempty"`
	// Status is the HTTP status of the response the body came with: 200, or
	// 304 when the cached body was revalidated. Zero for local files and for
	// a body the cache served without asking the server.
	Status int `msgpack:"status,omitempty"`
	// ForSource is the id of the source this fetch was for when its records
	// go under another id, SourceID: that of the source that first delivered
	// the same body of the same URL to the dataset (so they are not added
	// twice), or "<id>@<16 hex digits of sha256>" when the source's own id
	// already holds another body. Empty when they are the same.
	ForSource string `msgpack:"for_source,omitempty"`
	// Records is the source's Records path, if any.
	Records string `msgpack:"records,omitempty"`
}

// RecordBatch carries a run of records parsed from one source, in columns.
// Part numbers a source's batches from 0; the batch with Last set is the
// source's final one, so a source of P batches ends with Part P-1, Last true.
// A source without records still sends one empty batch with Last set.
type RecordBatch struct {
	V        int       `msgpack:"v"`
	SourceID string    `msgpack:"source_id"`
	Dataset  string    `msgpack:"dataset"`
	URL      string    `msgpack:"url"`
	Part     int       `msgpack:"part"`
	Last     bool      `msgpack:"last"`
	SchemaFP string    `msgpack:"schema_fp"`
	Rows     int       `msgpack:"rows"`
	Columns  []Column  `msgpack:"columns"`
	At       time.Time `msgpack:"at"`
	// PublishedAt is when the batch's source was published (Fetched's).
	PublishedAt time.Time `msgpack:"published_at,omitempty"`
	// Skipped lists the malformed input rows the parser skipped since the
	// source's previous batch; a source lists at most 100 of them in all.
	Skipped []SkippedRow `msgpack:"skipped,omitempty"`
	// SkippedRows counts every malformed input row skipped since the
	// source's previous batch, listed in Skipped or not.
	SkippedRows int `msgpack:"skipped_rows,omitempty"`
}

// SkippedRow is a malformed input row that was left out of a source's
// records, and why.
type SkippedRow struct {
	// Line is the 1-based input line the problem is on.
	Line int64 `msgpack:"line" json:"line"`
	// Reason says what is wrong with the row.
	Reason string `msgpack:"reason" json:"reason"`
}

// PartKey names one batch of one source: "<source_id>/<part>".
func (b *RecordBatch) PartKey() string { return PartKey(b.SourceID, b.Part) }

// PartKey names part of source id.
func PartKey(sourceID string, part int) string { return fmt.Sprintf("%s/%d", sourceID, part) }

// Type is a column's value type.
type Type string

// The column types trainfeed infers.
const (
	TypeInt    Type = "int"
	TypeFloat  Type = "float"
	TypeBool   Type = "bool"
	TypeString Type = "string"
	// TypeTimestamp values are instants, held in Ints as microseconds since
	// the Unix epoch, UTC.
	TypeTimestamp Type = "timestamp"
)

// Column is one named, typed column of a RecordBatch. Exactly one of the
// value slices matching Type holds Rows values; Nulls, when present, marks
// the rows whose value is missing (their slot in the value slice holds the
// zero value).
type Column struct {
	Name    string    `msgpack:"name"`
	Type    Type      `msgpack:"type"`
	Nulls   []bool    `msgpack:"nulls,omitempty"`
	Ints    []int64   `msgpack:"ints,omitempty"`
	Floats  []float64 `msgpack:"floats,omitempty"`
	Bools   []bool    `msgpack:"bools,omitempty"`
	Strings []string  `msgpack:"strings,omitempty"`
}

// IsNull reports whether row i of c is missing.
func (c *Column) IsNull(i int) bool { return len(c.Nulls) > i && c.Nulls[i] }

// AllNull reports whether column c of a batch of rows rows holds no value.
func (c *Column) AllNull(rows int) bool {
	if rows == 0 {
		return true
	}
	if len(c.Nulls) != rows {
		return false
	}
	for _, n := range c.Nulls {
		if !n {
			return false
		}
	}
	return true
}

// Value returns row i of c as int64, float64, bool, string, time.Time (UTC)
// or nil.
func (c *Column) Value(i int) any {
	if c.IsNull(i) {
		return nil
	}
	switch c.Type {
	case TypeInt:
		return c.Ints[i]
	case TypeTimestamp:
		return time.UnixMicro(c.Ints[i]).UTC()
	case TypeFloat:
		return c.Floats[i]
	case TypeBool:
		return c.Bools[i]
	default:
		return c.Strings[i]
	}
}

// Len returns the number of values c holds.
func (c *Column) Len() int {
	switch c.Type {
	case TypeInt, TypeTimestamp:
		return len(c.Ints)
	case TypeFloat:
		return len(c.Floats)
	case TypeBool:
		return len(c.Bools)
	default:
		return len(c.Strings)
	}
}

// Field is a column's name and type, as schemas list them.
type Field struct {
	Name string `msgpack:"name" json:"name"`
	Type Type   `msgpack:"type" json:"type"`
}

// PartRef names a batch a chunk holds.
type PartRef struct {
	SourceID string `msgpack:"source_id" json:"source_id"`
	URL      string `msgpack:"url" json:"url"`
	Part     int    `msgpack:"part" json:"part"`
	Last     bool   `msgpack:"last,omitempty" json:"last,omitempty"`
	Rows     int    `msgpack:"rows" json:"rows"`
	// Nulled counts the part's values the dataset's column types could
	// not hold unchanged: they are null in the chunk.
	Nulled int `msgpack:"nulled,omitempty" json:"nulled,omitempty"`
	// PublishedAt is when the part's source was published: the start of
	// its freshness (publish to chunk committed).
	PublishedAt time.Time `msgpack:"published_at,omitempty" json:"-"`
	// Skipped counts the malformed input rows of the source skipped since
	// its previous part; Skips lists the first few.
	Skipped int          `msgpack:"skipped,omitempty" json:"skipped,omitempty"`
	Skips   []SkippedRow `msgpack:"skips,omitempty" json:"skips,omitempty"`
}

// Chunk announces a committed chunk of a dataset. A commit with Records == 0
// holds only empty batches and has no file.
type Chunk struct {
	V        int     `msgpack:"v" json:"-"`
	Dataset  string  `msgpack:"dataset" json:"-"`
	Seq      uint64  `msgpack:"seq" json:"seq"`
	File     string  `msgpack:"file" json:"file"`
	Format   string  `msgpack:"format" json:"format"`
	Records  int64   `msgpack:"records" json:"records"`
	Bytes    int64   `msgpack:"bytes" json:"bytes"`
	SHA256   string  `msgpack:"sha256" json:"sha256"`
	Object   string  `msgpack:"object,omitempty" json:"object,omitempty"`
	SchemaFP string  `msgpack:"schema_fp" json:"schema_fp"`
	Schema   []Field `msgpack:"schema" json:"-"`
	// SchemaVersion numbers the dataset schema the chunk was written with
	// (0: written before datasets had one schema).
	SchemaVersion int       `msgpack:"schema_version,omitempty" json:"schema_version,omitempty"`
	CreatedAt     time.Time `msgpack:"created_at" json:"created_at"`
	Parts         []PartRef `msgpack:"parts" json:"parts"`
	// Replaces is set on a chunk written again in a widened schema: the
	// file it replaces, which held the same records in the older types.
	Replaces string `msgpack:"replaces,omitempty" json:"replaces,omitempty"`
	// CommittedVersion and CommittedSchema are, on a rewritten chunk, the
	// schema version it was committed in and that version's schema: the
	// dataset's history, which the manifest lists.
	CommittedVersion int     `msgpack:"committed_version,omitempty" json:"committed_version,omitempty"`
	CommittedSchema  []Field `msgpack:"committed_schema,omitempty" json:"-"`
	// AdoptedFrom names the ledger that wrote the chunk's first file,
	// when the chunk came in by adopting a folder another ledger wrote.
	AdoptedFrom string `msgpack:"adopted_from,omitempty" json:"adopted_from,omitempty"`
}

// DeadLetter is a message a stage gave up on, with why.
type DeadLetter struct {
	V         int    `msgpack:"v" json:"v"`
	Stage     string `msgpack:"stage" json:"stage"`
	Dataset   string `msgpack:"dataset" json:"dataset"`
	Subject   string `msgpack:"subject" json:"subject"`
	StreamSeq uint64 `msgpack:"stream_seq" json:"stream_seq"`
	Data      []byte `msgpack:"data" json:"data"`
	// DataOmitted is the size of the original message when it was too
	// large to keep in a dead letter; Data is then empty.
	DataOmitted int                 `msgpack:"data_omitted,omitempty" json:"data_omitted,omitempty"`
	Headers     map[string][]string `msgpack:"headers,omitempty" json:"headers,omitempty"`
	Error       string              `msgpack:"error" json:"error"`
	Attempts    uint64              `msgpack:"attempts" json:"attempts"`
	SourceID    string              `msgpack:"source_id,omitempty" json:"source_id,omitempty"`
	URL         string              `msgpack:"url,omitempty" json:"url,omitempty"`
	At          time.Time           `msgpack:"at" json:"at"`
}

// Encode marshals v (a pointer to one of the wire types) as msgpack, setting
// its version.
func Encode(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Source:
		m.V = Version
	case *Fetched:
		m.V = Version
	case *RecordBatch:
		m.V = Version
	case *Chunk:
		m.V = Version
	case *DeadLetter:
		m.V = Version
	default:
		return nil, fmt.Errorf("encode %T: not a wire type", v)
	}
	// One buffer of about the right size: a growing one would allocate
	// twice a record batch's size on its way there.
	size := 256
	if b, ok := v.(*RecordBatch); ok {
		size = b.encodedSizeHint()
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if err := msgpack.NewEncoder(buf).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// encodedSizeHint returns about the size of b's msgpack encoding, at least.
func (b *RecordBatch) encodedSizeHint() int {
	n := 256 + len(b.SourceID) + len(b.URL) + len(b.Dataset) + len(b.SchemaFP)
	for i := range b.Columns {
		c := &b.Columns[i]
		n += 32 + len(c.Name) + len(c.Nulls) + len(c.Bools) + 9*(len(c.Ints)+len(c.Floats))
		for _, s := range c.Strings {
			n += len(s) + 5
		}
	}
	for _, r := range b.Skipped {
		n += 32 + len(r.Reason)
	}
	return n
}

// Decode unmarshals msgpack data into v and checks its version.
func Decode(data []byte, v any) error {
	if err := msgpack.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	var ver int
	switch m := v.(type) {
	case *Source:
		ver = m.V
	case *Fetched:
		ver = m.V
	case *RecordBatch:
		ver = m.V
	case *Chunk:
		ver = m.V
	case *DeadLetter:
		ver = m.V
	}
	if ver > Version {
		return fmt.Errorf("decode %T: version %d: %w", v, ver, ErrVersion)
	}
	return nil
}

var datasetRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidDataset reports whether name can be used as a dataset name: 1 to 64
// letters, digits, '_' or '-', so it is one NATS subject token and one
// folder name.
func ValidDataset(name string) bool { return datasetRE.MatchString(name) }

// DecodeSource reads a Source in either encoding: JSON when the content type
// says so or the payload starts with '{', msgpack otherwise. It checks that
// the source names a URL and, when it names a dataset, that the name is valid.
func DecodeSource(data []byte, contentType string) (Source, error) {
	var s Source
	trimmed := bytes.TrimSpace(data)
	if contentType == "application/json" || bytes.HasPrefix(trimmed, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Source{}, fmt.Errorf("decode source json: %w", err)
		}
		if s.V > Version {
			return Source{}, fmt.Errorf("decode source json: version %d: %w", s.V, ErrVersion)
		}
	} else if err := Decode(data, &s); err != nil {
		return Source{}, err
	}
	if s.URL == "" {
		return Source{}, errors.New("decode source: no url")
	}
	if s.Dataset != "" && !ValidDataset(s.Dataset) {
		return Source{}, fmt.Errorf("decode source: invalid dataset name %q", s.Dataset)
	}
	if err := CheckFormat(s.Format, s.Records); err != nil {
		return Source{}, fmt.Errorf("decode source: %w", err)
	}
	return s, nil
}

// SourceFormat returns the format a source's format hint names, in its
// canonical spelling (csv, tsv, jsonl, json, parquet), or "" for a hint it does not
// know. Case and surrounding space do not matter; tab, ndjson and
// jsonlines are other names.
func SourceFormat(hint string) string {
	switch strings.ToLower(strings.TrimSpace(hint)) {
	case "csv":
		return "csv"
	case "tsv", "tab":
		return "tsv"
	case "jsonl", "ndjson", "jsonlines":
		return "jsonl"
	case "json":
		return "json"
	case "parquet":
		return "parquet"
	}
	return ""
}

// maxRecordsPath bounds a records path, as no API nests its records deeper.
const maxRecordsPath = 32

// RecordsPath splits a records path into its keys: "data.items" is the
// array under key "items" of the object under key "data" of the document.
// A leading '.' is allowed, as jq writes it (".data.items"). It refuses an
// empty key ("data..items") and paths of more than 32 keys; a key holding
// a '.' cannot be named. An empty path gives no keys.
func RecordsPath(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	keys := strings.Split(strings.TrimPrefix(path, "."), ".")
	if len(keys) > maxRecordsPath {
		return nil, fmt.Errorf("records path %q: more than %d keys", path, maxRecordsPath)
	}
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("records path %q: empty key (want keys joined by '.', such as data.items)", path)
		}
	}
	return keys, nil
}

// CheckFormat refuses a format hint that is not one of SourceFormat's,
// like an unknown key, and a records path that RecordsPath refuses or
// that a format other than json cannot have.
func CheckFormat(format, records string) error {
	if format != "" && SourceFormat(format) == "" {
		return fmt.Errorf("unknown format %q: want csv, tsv, jsonl, json or parquet (or none, to have the body sniffed)", format)
	}
	if records == "" {
		return nil
	}
	if _, err := RecordsPath(records); err != nil {
		return err
	}
	if f := strings.ToLower(strings.TrimSpace(format)); f != "" && f != "json" {
		return fmt.Errorf("records path %q: needs a JSON document, but the format is %q", records, format)
	}
	return nil
}
