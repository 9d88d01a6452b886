package combine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A commit that widens a column's type (int to float, anything to string)
// starts a schema version in which the dataset's earlier chunks are written
// again, so that every chunk file has one type per column and a reader that
// takes the first file's schema for all (a DuckDB glob) changes no value.
//
// A rewrite reads the chunk's file, writes its records in the dataset's
// schema as a pending file, uploads it, and replaces the chunk's manifest
// entry only if the entry is still the one it read (a compare-and-set on
// the entry's revision): that is its commit point, and among members
// rewriting at once one wins. The new entry names the file it replaces.
// Each member then puts the new file in place, lists it in manifest.json
// and only then removes the old file (or, for a file another ledger wrote
// and this one adopted, moves it into the folder's .superseded/). A crash
// at any step leaves either the old entry, whose rewrite the next start
// does again, or the new one, which the next start puts in place.

// rewriteRetry is how long the rewrite loop waits after a failed rewrite.
const rewriteRetry = 5 * time.Second

// supersede is an applied rewrite and the entry it replaced.
type supersede struct{ old, new *wire.Chunk }

// replace applies an entry at a seq the ledger has: a rewrite when it
// lists another file, or the same file in another schema version, than
// the entry applied. It reports whether the folder needs a sync. Callers
// hold c.mu.
func (c *Combiner) replace(ds *set, ch *wire.Chunk) bool {
	i, found := slices.BinarySearchFunc(ds.all, ch.Seq, func(e *wire.Chunk, seq uint64) int { return cmp.Compare(e.Seq, seq) })
	if !found || (ds.all[i].SHA256 == ch.SHA256 && ds.all[i].SchemaVersion == ch.SchemaVersion) {
		return false
	}
	old := ds.all[i]
	ds.all[i] = ch
	j, found := slices.BinarySearchFunc(ds.chunks, ch.Seq, func(e *wire.Chunk, seq uint64) int { return cmp.Compare(e.Seq, seq) })
	if !found {
		return false
	}
	ds.chunks[j] = ch
	switch {
	case old.File == ch.File:
		// The same bytes in the new types (JSON lines write 1 for an int
		// and for a float alike): only its entry in manifest.json changes.
		ds.relisted = append(ds.relisted, supersede{old: old, new: ch})
	case j < ds.placed:
		ds.superseded = append(ds.superseded, supersede{old: old, new: ch})
	}
	return true
}

// rewriteSoon asks the rewrite loop to look for chunks to write again.
func (c *Combiner) rewriteSoon() {
	select {
	case c.rewrite <- struct{}{}:
	default: // asked already
	}
}

// rewriteLoop writes again, in their dataset's schema, the chunks written
// in types it has widened since, whenever asked, until ctx ends.
func (c *Combiner) rewriteLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.rewrite:
		case <-retry.C:
		}
		if err := c.rewriteAll(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Error("rewrite chunks in a widened schema; retrying", "err", err, "in", rewriteRetry)
			retry.Reset(rewriteRetry)
		}
	}
}

// rewriteAll rewrites every chunk whose types its dataset widened.
func (c *Combiner) rewriteAll(ctx context.Context) error {
	type job struct {
		ds  *set
		old *wire.Chunk
	}
	c.mu.Lock()
	var todo []job
	for _, ds := range c.sets {
		for _, ch := range ds.chunks {
			if behind(ch.Schema, ds.schema) {
				todo = append(todo, job{ds, ch})
			}
		}
	}
	c.mu.Unlock()
	for _, j := range todo {
		if ctx.Err() != nil {
			return nil
		}
		if err := c.rewriteChunk(ctx, j.ds, j.old); err != nil {
			return fmt.Errorf("rewrite %s chunk %d: %w", j.ds.name, j.old.Seq, err)
		}
	}
	return nil
}

// behind reports whether a chunk written with fields has a column the
// dataset's schema now types otherwise.
func behind(fields, schema []wire.Field) bool {
	types := make(map[string]wire.Type, len(schema))
	for _, f := range schema {
		types[f.Name] = f.Type
	}
	for _, f := range fields {
		if t, ok := types[f.Name]; ok && t != f.Type {
			return true
		}
	}
	return false
}

// rewriteChunk writes old's records again in the dataset's schema and
// replaces its entry, unless another member replaced it first.
func (c *Combiner) rewriteChunk(ctx context.Context, ds *set, old *wire.Chunk) error {
	c.mu.Lock()
	schema, version := ds.schema, ds.version
	c.mu.Unlock()
	src := filepath.Join(ds.dir, old.File)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) && c.chunks != nil && old.Object != "" {
		// Not in this member's folder (yet): read the uploaded copy.
		tmp, err := os.CreateTemp(ds.dir, ".tmp-rewrite-*")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if err := dataset.DownloadChunk(ctx, c.chunks, old, tmp.Name()); err != nil {
			return err
		}
		src = tmp.Name()
	}
	b, err := chunk.ReadFile(src, chunk.Format(old.Format), old.Schema)
	if err != nil {
		return err
	}
	fitted, _ := dataset.Fit(schema, b)
	ch := *old
	ch.Schema, ch.SchemaFP, ch.SchemaVersion = schema, chunk.Fingerprint(schema), version
	ch.Replaces, ch.Object = old.File, ""
	if old.CommittedVersion == 0 {
		ch.CommittedVersion, ch.CommittedSchema = old.SchemaVersion, old.Schema
	}
	ch.Parts = slices.Clone(old.Parts)
	if lost := countLost(b, fitted, ch.Parts); lost > 0 {
		c.cfg.Logger.Error("integers a float64 would round are written as null in the widened column (counted in the parts' nulled)",
			"dataset", ds.name, "seq", old.Seq, "values", lost)
	}
	c.encoders <- struct{}{}
	path, err := c.writeChunk(ds, &ch, []*wire.RecordBatch{fitted})
	<-c.encoders
	if err != nil {
		return err
	}
	ch.File = dataset.ChunkFile(ch.Seq, ch.SHA256, chunk.Format(ch.Format))
	if c.chunks != nil {
		if err := c.upload(ctx, ds, &ch, path); err != nil {
			os.Remove(path)
			return err
		}
	}
	replaced, err := c.replaceEntry(ctx, old, &ch)
	if err != nil || !replaced {
		os.Remove(path)
		return err
	}
	c.failpoint(stepRewritten)
	if ch.File == old.File {
		os.Remove(path) // the same bytes: the chunk's file is in place already
	}
	// Committed: finish even when ctx ends, as a commit does.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*commitTimeout)
	defer cancel()
	ds.commit.Lock()
	c.mu.Lock()
	c.apply(ds, &ch) // or the watcher applied it already
	ds.rewrote = append(ds.rewrote, &ch)
	c.mu.Unlock()
	c.syncLocked(fctx, ds)
	ds.commit.Unlock()
	c.announceRewrites(fctx, ds)
	if c.cfg.OnCommit != nil {
		c.cfg.OnCommit(&ch)
	}
	c.cfg.Logger.Info("rewrote chunk in the widened schema", "dataset", ds.name, "seq", ch.Seq,
		"version", ch.SchemaVersion, "file", ch.File, "replaces", ch.Replaces)
	return nil
}

// countLost counts, per part, the values of b that fitted holds as null,
// adds them to the parts' Nulled and returns their sum.
func countLost(b, fitted *wire.RecordBatch, parts []wire.PartRef) int {
	if b == fitted {
		return 0
	}
	total := 0
	for i := range b.Columns {
		was, now := &b.Columns[i], &fitted.Columns[i]
		p, end := 0, 0
		if len(parts) > 0 {
			end = parts[0].Rows
		}
		for r := range b.Rows {
			for r >= end && p+1 < len(parts) {
				p++
				end += parts[p].Rows
			}
			if !was.IsNull(r) && now.IsNull(r) {
				total++
				if p < len(parts) {
					parts[p].Nulled++
				}
			}
		}
	}
	return total
}

// replaceEntry replaces old's manifest entry with ch if the entry is still
// old, and reports whether it did.
func (c *Combiner) replaceEntry(ctx context.Context, old, ch *wire.Chunk) (bool, error) {
	key := entryKey(old.Dataset, old.Seq)
	rctx, cancel := request(ctx)
	e, err := c.kv.Get(rctx, key)
	cancel()
	if err != nil {
		return false, fmt.Errorf("read manifest entry %s: %w", key, err)
	}
	var cur wire.Chunk
	if err := wire.Decode(e.Value(), &cur); err != nil {
		return false, fmt.Errorf("manifest entry %s: %w", key, err)
	}
	if cur.SHA256 != old.SHA256 {
		return false, nil // another member rewrote it: the watcher brings it
	}
	data, err := wire.Encode(ch)
	if err != nil {
		return false, err
	}
	rctx, cancel = request(ctx)
	_, err = c.kv.Update(rctx, key, data, e.Revision())
	cancel()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil // replaced meanwhile
	case c.isEntry(key, ch):
		return true, nil // the reply was lost, the update was not
	}
	return false, fmt.Errorf("replace manifest entry %s: %w", key, err)
}

// placeSuperseded puts in place the files of the rewrites applied since
// the last call and queues them for manifest.json. Callers hold ds.commit.
func (c *Combiner) placeSuperseded(ctx context.Context, ds *set) error {
	c.mu.Lock()
	todo := ds.superseded
	ds.superseded = nil
	c.mu.Unlock()
	for i, s := range todo {
		if err := c.place(ctx, ds, s.new); err != nil {
			c.mu.Lock()
			ds.superseded = append(todo[i:], ds.superseded...)
			c.mu.Unlock()
			return err
		}
		c.mu.Lock()
		ds.relisted = append(ds.relisted, s)
		c.mu.Unlock()
	}
	return nil
}

// retire takes a replaced chunk file out of the dataset folder, once
// manifest.json lists its replacement: it removes a file this ledger
// wrote and moves one it adopted into .superseded/.
func (c *Combiner) retire(ds *set, file string, adopted bool) error {
	path := filepath.Join(ds.dir, file)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if !adopted {
		return os.Remove(path)
	}
	dir := filepath.Join(ds.dir, dataset.SupersedeDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Rename(path, filepath.Join(dir, file))
}

// retireReplaced retires the files that the ledger's rewrites replaced
// and a crash left in the folder. Callers run before Run's loop.
func (c *Combiner) retireReplaced(ds *set) error {
	listed := map[string]bool{}
	for _, ch := range ds.chunks {
		listed[ch.File] = true
	}
	for _, ch := range ds.chunks {
		if ch.Replaces == "" || listed[ch.Replaces] || !dataset.IsCommittedName(ch.Replaces) || strings.ContainsRune(ch.Replaces, os.PathSeparator) {
			continue
		}
		// Whether the replaced file was the adopted original or a rewrite
		// of it is not known here: an adopted chunk's is kept.
		if err := c.retire(ds, ch.Replaces, ch.AdoptedFrom != ""); err != nil {
			return fmt.Errorf("retire %s: %w", ch.Replaces, err)
		}
	}
	return nil
}

// announceRewrites publishes the events of this member's rewrites of ds
// that manifest.json lists, on the dataset's rewrite subject.
func (c *Combiner) announceRewrites(ctx context.Context, ds *set) {
	c.mu.Lock()
	todo := ds.rewrote
	ds.rewrote = nil
	c.mu.Unlock()
	for _, ch := range todo {
		data, err := wire.Encode(ch)
		if err == nil {
			err = runner.Retry(ctx, announceRetry, nil, func() error {
				return runner.Publish(ctx, c.js, topology.RewriteSubject(ch.Dataset), data,
					wire.RewriteMsgID(ch.Dataset, ch.Seq, ch.SHA256), requestTimeout, nil)
			})
		}
		if err != nil {
			c.cfg.Logger.Error("announce rewritten chunk", "dataset", ch.Dataset, "seq", ch.Seq, "err", err)
		}
	}
}
