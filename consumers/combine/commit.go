package combine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// commitTimeout bounds one commit's JetStream calls. A commit runs to its end
// even while the stage shuts down, so that held messages can be acked.
const commitTimeout = 30 * time.Second

// entryKey is the manifest bucket key of a chunk: sorting keys sorts by
// dataset, then commit order.
func entryKey(dataset string, seq uint64) string { return fmt.Sprintf("%s.%012d", dataset, seq) }

// commit writes p as the dataset's next chunk: the file (temp, fsync,
// rename), then the manifest entry (the commit point), then manifest.json,
// then the chunk event. Files are encoded concurrently; from the rename on,
// commits of a dataset take turns, so sequence order is commit order.
func (c *Combiner) commit(ds *dataset, p *pending) error {

	ch := &wire.Chunk{Dataset: ds.name, Format: string(c.cfg.Format), CreatedAt: time.Now().UTC()}
	for _, b := range p.batches {
		ch.Schema = chunk.MergeSchema(ch.Schema, chunk.SchemaOf(b))
		ch.Records += int64(b.Rows)
		ch.Parts = append(ch.Parts, wire.PartRef{SourceID: b.SourceID, URL: b.URL, Part: b.Part, Last: b.Last, Rows: b.Rows})
	}
	ch.SchemaFP = chunk.Fingerprint(ch.Schema)

	var tmp string
	if ch.Records > 0 {
		if err := os.MkdirAll(ds.dir, 0o755); err != nil {
			return fmt.Errorf("commit %s: %w", ds.name, err)
		}
		var err error
		tmp, err = c.writeChunk(ds, ch, p.batches)
		if err != nil {
			return fmt.Errorf("commit %s: %w", ds.name, err)
		}
		defer os.Remove(tmp) // no-op once renamed
	}

	ds.commit.Lock()
	defer ds.commit.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	c.mu.Lock()
	seq := ds.nextSeq
	c.mu.Unlock()
	for {
		ch.Seq = seq
		if tmp != "" {
			ch.File = fmt.Sprintf("chunk-%012d-%s%s", seq, ch.SHA256[:8], c.cfg.Format.Ext())
			if err := os.Rename(tmp, filepath.Join(ds.dir, ch.File)); err != nil {
				return fmt.Errorf("commit %s: %w", ds.name, err)
			}
			tmp = filepath.Join(ds.dir, ch.File)
			if err := syncDir(ds.dir); err != nil {
				return fmt.Errorf("commit %s: %w", ds.name, err)
			}
		}
		data, err := wire.Encode(ch)
		if err != nil {
			return err
		}
		_, err = c.kv.Create(ctx, entryKey(ds.name, seq), data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			seq++ // another member committed this sequence number first
			continue
		}
		if err != nil && !c.committed(entryKey(ds.name, seq), ch) {
			if tmp != "" {
				os.Remove(tmp)
			}
			return fmt.Errorf("commit %s chunk %d: %w", ds.name, seq, err)
		}
		break
	}

	c.mu.Lock()
	c.apply(ds, ch)
	c.mu.Unlock()
	if err := c.writeManifest(ds); err != nil {
		// The entry is committed; the next commit or restart rewrites the file.
		c.cfg.Logger.Error("write manifest", "dataset", ds.name, "err", err)
	}
	c.announce(ctx, ch)
	c.cfg.Logger.Debug("committed chunk", "dataset", ds.name, "seq", ch.Seq, "records", ch.Records, "file", ch.File)
	return nil
}

// committed reports whether the entry under key is ch: a create whose reply
// was lost may still have been applied.
func (c *Combiner) committed(key string, ch *wire.Chunk) bool {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	e, err := c.kv.Get(ctx, key)
	if err != nil {
		return false
	}
	var got wire.Chunk
	return wire.Decode(e.Value(), &got) == nil && got.SHA256 == ch.SHA256 && got.File == ch.File &&
		len(got.Parts) == len(ch.Parts) && got.CreatedAt.Equal(ch.CreatedAt)
}

// writeChunk writes the batches to a temp file in the dataset folder and
// fsyncs it, filling ch's bytes and sha256. It returns the temp file's path.
func (c *Combiner) writeChunk(ds *dataset, ch *wire.Chunk, batches []*wire.RecordBatch) (string, error) {
	f, err := os.CreateTemp(ds.dir, ".tmp-chunk-*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if _, err = chunk.Write(bw, c.cfg.Format, ch.Schema, batches); err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	ch.Bytes = cw.n
	ch.SHA256 = hex.EncodeToString(h.Sum(nil))
	return f.Name(), nil
}

// announce publishes the chunk event; a failure is logged, the commit stands.
func (c *Combiner) announce(ctx context.Context, ch *wire.Chunk) {
	data, err := wire.Encode(ch)
	if err == nil {
		id := fmt.Sprintf("chunk/%s/%d", ch.Dataset, ch.Seq)
		for attempt := range 5 {
			if _, err = c.js.Publish(ctx, subjectOf(ch.Dataset), data, jetstream.WithMsgID(id)); err == nil {
				return
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
	}
	c.cfg.Logger.Error("announce chunk", "dataset", ch.Dataset, "seq", ch.Seq, "err", err)
}

// writeManifest replaces the dataset's manifest.json with its committed chunks.
func (c *Combiner) writeManifest(ds *dataset) error {
	c.mu.Lock()
	m := Manifest{
		Dataset: ds.name, Format: string(c.cfg.Format), Schema: ds.schema, SchemaFP: chunk.Fingerprint(ds.schema),
		Chunks: slices.Clone(ds.chunks), UpdatedAt: time.Now().UTC(),
	}
	c.mu.Unlock()
	if m.Chunks == nil {
		m.Chunks = []*wire.Chunk{}
	}
	if m.Schema == nil {
		m.Schema = []wire.Field{}
	}
	for _, ch := range m.Chunks {
		m.Records += ch.Records
		m.Bytes += ch.Bytes
		if ch.Format != "" {
			m.Format = ch.Format
		}
	}
	data, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ds.dir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(ds.dir, ManifestFile), append(data, '\n'))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
