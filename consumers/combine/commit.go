package combine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// commitTimeout bounds one commit's JetStream calls. A commit runs to its end
// even while the stage shuts down, so that held messages can be acked.
const commitTimeout = 30 * time.Second

// requestTimeout bounds each JetStream request of a commit: a reply lost
// with a server that died is retried (or the commit given up and its
// batches redelivered) after this long, not after the whole commit's time.
const requestTimeout = 10 * time.Second

// request returns ctx bounded by requestTimeout.
func request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, requestTimeout)
}

// Commit steps, in order. A crash after any of them loses nothing and
// duplicates nothing: see the package documentation.
const (
	stepWritten   = "written"   // pending file fsynced in the dataset folder
	stepUploaded  = "uploaded"  // chunk in the chunks object store
	stepCommitted = "committed" // manifest entry created: the commit point
	stepRenamed   = "renamed"   // pending file renamed to its chunk name
	stepManifest  = "manifest"  // manifest.json replaced
	stepAnnounced = "announced" // chunk event published
	stepRewritten = "rewritten" // a rewrite's entry replaced: its commit point
)

// entryKey is the manifest bucket key of a chunk.
func entryKey(dataset string, seq uint64) string { return topology.ManifestKey(dataset, seq) }

// objectName is the chunks object store name of a chunk file.
func objectName(dataset, file string) string { return dataset + "/" + file }

// commit makes p the dataset's next chunk. The file is encoded and uploaded
// concurrently with other commits; from the manifest entry on, commits of a
// dataset take turns, so sequence order is commit order.
func (c *Combiner) commit(ds *set, p *pending) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*commitTimeout)
	defer cancel()
	batches := p.batches
	for {
		ch, pendingPath, kept, err := c.prepare(ctx, ds, batches, p)
		if err != nil {
			return fmt.Errorf("commit %s: %w", ds.name, err)
		}
		if len(kept) == 0 {
			return nil // every batch was left out: nothing to commit
		}
		batches = kept
		done, rest, err := c.publishEntry(ctx, ds, ch, batches)
		if err != nil {
			if pendingPath != "" {
				os.Remove(pendingPath)
			}
			return fmt.Errorf("commit %s: %w", ds.name, err)
		}
		if done {
			if err := c.publish(ctx, ds, ch.Seq); err != nil {
				// Committed: the records are in the dataset; a restart repairs the rest.
				c.cfg.Logger.Error("publish commit", "dataset", ds.name, "seq", ch.Seq, "err", err)
			}
			if c.cfg.OnCommit != nil {
				c.cfg.OnCommit(ch)
			}
			return nil
		}
		// Another member committed some of these batches first: drop them and
		// write the chunk again without them.
		if pendingPath != "" {
			os.Remove(pendingPath)
		}
		if len(rest) == 0 {
			return nil
		}
		batches = rest
	}
}

// prepare builds the chunk entry of batches in the dataset's schema, writes
// and uploads its file, and returns the entry, the pending file's path (""
// for a commit without records) and the batches it holds. A batch with
// values that do not fit the schema is left out under MismatchFail, its
// error in p.rejected.
func (c *Combiner) prepare(ctx context.Context, ds *set, batches []*wire.RecordBatch, p *pending) (*wire.Chunk, string, []*wire.RecordBatch, error) {
	ch := &wire.Chunk{Dataset: ds.name, Format: string(c.cfg.Format), CreatedAt: time.Now().UTC()}
	c.mu.Lock()
	have := ds.schema
	c.mu.Unlock()
	schema := dataset.Evolve(have, batchSchema(batches))
	if c.cfg.mismatch(ds.name) == MismatchWiden {
		var widened []dataset.Widened
		if schema, widened = dataset.WidenToFit(schema, batches); len(widened) > 0 {
			c.cfg.Logger.Info("widening dataset columns so that every value fits unchanged; earlier chunks are written again",
				"dataset", ds.name, "columns", widenedText(widened))
		}
	}
	fitted := make([]*wire.RecordBatch, 0, len(batches))
	kept := batches[:0:0]
	for _, b := range batches {
		fb, losses := dataset.Fit(schema, b)
		nulled := 0
		for _, l := range losses {
			nulled += l.Values
		}
		if nulled > 0 && c.cfg.mismatch(ds.name) == MismatchFail {
			if p.rejected == nil {
				p.rejected = map[string]error{}
			}
			p.rejected[b.PartKey()] = runner.Permanent(mismatchError(ds.name, losses[0]))
			continue
		}
		c.warnLosses(ds, b, losses)
		kept = append(kept, b)
		fitted = append(fitted, fb)
		ch.Records += int64(b.Rows)
		ch.Parts = append(ch.Parts, wire.PartRef{
			SourceID: b.SourceID, URL: b.URL, Part: b.Part, Last: b.Last, Rows: b.Rows, Nulled: nulled, PublishedAt: b.PublishedAt,
			Skipped: max(b.SkippedRows, len(b.Skipped)), Skips: b.Skipped[:min(len(b.Skipped), maxPartSkips)],
		})
	}
	if len(kept) < len(batches) {
		// Columns only the left-out batches have are not the dataset's
		// (fail never widens).
		schema = dataset.Evolve(have, batchSchema(kept))
	}
	ch.Schema = schema
	ch.SchemaFP = chunk.Fingerprint(ch.Schema)
	batches = fitted
	if ch.Records == 0 {
		return ch, "", kept, nil
	}
	if err := c.claim(ds); err != nil {
		return nil, "", nil, err
	}
	if err := os.MkdirAll(ds.dir, 0o755); err != nil {
		return nil, "", nil, err
	}
	c.encoders <- struct{}{}
	path, err := c.writeChunk(ds, ch, batches)
	<-c.encoders
	if err != nil {
		return nil, "", nil, err
	}
	c.failpoint(stepWritten)
	if c.chunks != nil {
		if err := c.upload(ctx, ds, ch, path); err != nil {
			os.Remove(path)
			return nil, "", nil, err
		}
		c.failpoint(stepUploaded)
	}
	return ch, path, kept, nil
}

// widenedText lists widened columns as "zip int→string, n int→float".
func widenedText(ws []dataset.Widened) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s %s→%s", w.Column, w.From, w.To)
	}
	return strings.Join(parts, ", ")
}

// maxPartSkips bounds the skipped rows a part entry lists; its count
// holds them all.
const maxPartSkips = 3

// batchSchema returns the merged schema of the columns that hold values in
// batches: the types a column new to the dataset starts with.
func batchSchema(batches []*wire.RecordBatch) []wire.Field {
	var fields []wire.Field
	for _, b := range batches {
		fields = chunk.MergeSchema(fields, chunk.SchemaOf(b))
	}
	return fields
}

// mismatchError says which values of a batch do not fit the dataset.
func mismatchError(dataset string, l dataset.Loss) error {
	return fmt.Errorf("column %q of dataset %s is %s, but %d values of this batch are %s that %s cannot hold unchanged (first %q): "+
		"declare the column's type with a cast step, or run with --type-mismatch null to write them as null",
		l.Column, dataset, l.Want, l.Values, l.Have, l.Want, l.First)
}

// warnLosses logs, once per dataset and column, that values were written
// as null because they do not fit the column's type.
func (c *Combiner) warnLosses(ds *set, b *wire.RecordBatch, losses []dataset.Loss) {
	for _, l := range losses {
		c.mu.Lock()
		warned := ds.lossWarned[l.Column]
		ds.lossWarned[l.Column] = true
		c.mu.Unlock()
		if !warned {
			c.cfg.Logger.Warn("values that do not fit the dataset's column type are written as null (counted in the part's nulled)",
				"dataset", ds.name, "column", l.Column, "type", l.Want, "got", l.Have, "first", l.First, "source", b.SourceID, "url", b.URL)
		}
	}
}

// upload puts the chunk file into the chunks object store, named by its
// content; the entry records the name.
func (c *Combiner) upload(ctx context.Context, ds *set, ch *wire.Chunk, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ch.Object = objectName(ds.name, ch.SHA256+chunk.Format(ch.Format).Ext())
	meta := jetstream.ObjectMeta{Name: ch.Object}
	// Names are digests: an old one is a commit tried again, whose chunks
	// are replaced.
	rctx, cancel := request(ctx)
	_, err = c.chunks.GetInfo(rctx, ch.Object)
	cancel()
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("upload chunk: %w", err)
	}
	exists := err == nil
	if err := c.objects.Put(ctx, meta, f, ch.Bytes, ch.SHA256, exists); err != nil {
		return fmt.Errorf("upload chunk: %w", err)
	}
	return nil
}

// publishEntry creates the chunk's manifest entry at the dataset's next free
// sequence number, then finishes the commit. When some of the batches are
// already in a committed entry (another member committed them first), it
// returns done=false and the batches no entry holds yet.
//
// The ledger holds every entry below ds.nextSeq (entries are created in
// sequence order and applied in order), and every sequence number from there
// on is read before it is passed, so no batch is committed twice.
func (c *Combiner) publishEntry(ctx context.Context, ds *set, ch *wire.Chunk, batches []*wire.RecordBatch) (done bool, rest []*wire.RecordBatch, err error) {
	ds.commit.Lock()
	defer ds.commit.Unlock()
	var seq uint64
	defer func() {
		c.mu.Lock()
		ds.committing = 0
		// The watcher leaves an entry at the seq being created to this
		// commit; when the commit gives up, the entry may still be there
		// (a create whose reply was lost): bring files and manifest up to it.
		missed := err != nil && ds.nextSeq > seq
		c.mu.Unlock()
		if missed {
			c.syncLocked(ctx, ds)
		}
	}()
	for {
		c.mu.Lock()
		seq = max(seq, ds.nextSeq)
		rest = slices.DeleteFunc(slices.Clone(batches), func(b *wire.RecordBatch) bool { return ds.committed[b.PartKey()] })
		c.mu.Unlock()
		if len(rest) < len(batches) {
			return false, rest, nil
		}
		c.mu.Lock()
		fits := c.fixVersion(ds, ch)
		c.mu.Unlock()
		if !fits {
			// Another member committed columns this chunk does not have
			// the same way: write it again in the dataset's schema.
			return false, batches, nil
		}
		ch.Seq = seq
		if ch.Records > 0 {
			ch.File = dataset.ChunkFile(seq, ch.SHA256, c.cfg.Format)
		}
		data, err := wire.Encode(ch)
		if err != nil {
			return false, nil, err
		}
		key := entryKey(ds.name, seq)
		c.mu.Lock()
		ds.committing = seq // our own entry needs no sync when the watcher sees it
		c.mu.Unlock()
		rctx, cancel := request(ctx)
		_, err = c.kv.Create(rctx, key, data)
		cancel()
		if err == nil || (!errors.Is(err, jetstream.ErrKeyExists) && c.isEntry(key, ch)) {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil, fmt.Errorf("create manifest entry %s: %w", key, err)
		}
		// Another member took this sequence number: learn its entry.
		other, err := c.readEntry(ctx, key)
		if err != nil {
			return false, nil, err
		}
		c.mu.Lock()
		c.apply(ds, other)
		c.mu.Unlock()
		seq++
	}
	c.failpoint(stepCommitted)
	if err := c.finish(ctx, ds, ch); err != nil {
		// Committed: the records are in the dataset; a restart repairs the rest.
		c.cfg.Logger.Error("finish commit", "dataset", ds.name, "seq", ch.Seq, "err", err)
	}
	return true, nil, nil
}

// finish does what follows the commit point under ds.commit: the ledger
// learns the entry and every listed chunk file (this one, and those of
// other members) is put in place. publish then lists and announces it.
// Restarting repeats both for entries a crash interrupted.
func (c *Combiner) finish(ctx context.Context, ds *set, ch *wire.Chunk) error {
	c.mu.Lock()
	c.apply(ds, ch) // or the watcher applied it already
	if n := len(ds.unannounced); n == 0 || ds.unannounced[n-1].Seq < ch.Seq {
		ds.unannounced = append(ds.unannounced, ch)
	}
	c.mu.Unlock()
	if err := c.placeAll(ctx, ds); err != nil {
		return err
	}
	c.failpoint(stepRenamed)
	c.cfg.Logger.Debug("committed chunk", "dataset", ds.name, "seq", ch.Seq, "records", ch.Records, "file", ch.File)
	return nil
}

// readEntry reads and decodes the manifest entry under key.
func (c *Combiner) readEntry(ctx context.Context, key string) (*wire.Chunk, error) {
	rctx, cancel := request(ctx)
	defer cancel()
	e, err := c.kv.Get(rctx, key)
	if err != nil {
		return nil, fmt.Errorf("read manifest entry %s: %w", key, err)
	}
	var ch wire.Chunk
	if err := wire.Decode(e.Value(), &ch); err != nil {
		return nil, fmt.Errorf("manifest entry %s: %w", key, err)
	}
	return &ch, nil
}

// fixVersion sets the schema version of ch, to be committed next: the
// dataset's, or the next one when ch adds or widens columns. It reports
// false when ch's schema neither is nor extends nor widens the dataset's,
// which commits of other members changed since ch was written. Callers
// hold c.mu.
func (c *Combiner) fixVersion(ds *set, ch *wire.Chunk) bool {
	if ch.Records == 0 {
		ch.Schema, ch.SchemaFP, ch.SchemaVersion = ds.schema, chunk.Fingerprint(ds.schema), ds.version
		return true
	}
	if !dataset.Widens(ds.schema, ch.Schema) {
		return false
	}
	ch.SchemaVersion = ds.version
	if ds.version == 0 || !slices.Equal(ch.Schema, ds.schema) {
		ch.SchemaVersion = ds.version + 1
	}
	return true
}

// isEntry reports whether the entry under key is ch: a create whose reply
// was lost may still have been applied.
func (c *Combiner) isEntry(key string, ch *wire.Chunk) bool {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	got, err := c.readEntry(ctx, key)
	return err == nil && got.SHA256 == ch.SHA256 && got.File == ch.File &&
		len(got.Parts) == len(ch.Parts) && got.CreatedAt.Equal(ch.CreatedAt)
}

// writeChunk writes the batches to the dataset folder as a pending file,
// fsynced, filling ch's bytes and sha256. It returns the file's path.
func (c *Combiner) writeChunk(ds *set, ch *wire.Chunk, batches []*wire.RecordBatch) (string, error) {
	f, err := dataset.CreateTemp(ds.dir, ".tmp-chunk-*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(cw)
	if _, err = chunk.Write(bw, chunk.Format(ch.Format), ch.Schema, batches); err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writerPool.Put(bw)
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
	path := filepath.Join(ds.dir, dataset.PendingFile(ch.SHA256, chunk.Format(ch.Format)))
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return path, nil
}

// writerPool holds the write buffers of chunk files.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
