package combine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// After its commit point a chunk is placed (its file renamed into the
// dataset folder, or restored from the chunks object store), listed in
// manifest.json and announced; one publisher at a time does that for every
// commit finished meanwhile.

// maxManifestWait bounds how long a commit's publishing waits for the
// previous manifest write to be spaced out.
const maxManifestWait = 100 * time.Millisecond

// listable returns the highest seq up to which every committed chunk of ds
// with records is in place. Callers hold c.mu.
func listable(ds *set) uint64 {
	if ds.placed < len(ds.chunks) {
		return ds.chunks[ds.placed].Seq - 1
	}
	if len(ds.all) == 0 {
		return 0
	}
	return ds.all[len(ds.all)-1].Seq
}

// publish returns once manifest.json lists, and chunk events announce,
// every commit of ds up to seq. One caller at a time publishes, for all
// commits finished so far; the others wait for it and are done when it
// covered them (group commit).
func (c *Combiner) publish(ctx context.Context, ds *set, seq uint64) error {
	ds.pubMu.Lock()
	defer ds.pubMu.Unlock()
	for ds.published < seq || c.relisting(ds) {
		if ds.publishing {
			ds.pubDone.Wait()
			continue
		}
		ds.publishing = true
		ds.pubMu.Unlock()
		upto, err := c.publishOnce(ctx, ds)
		ds.pubMu.Lock()
		ds.publishing = false
		ds.published = max(ds.published, upto)
		ds.claimed = ds.claimed || err == nil
		ds.pubDone.Broadcast()
		if err != nil {
			return err
		}
		if ds.published < seq {
			return fmt.Errorf("chunk %d is not in place", seq)
		}
	}
	return nil
}

// relisting reports whether rewrites of ds are in place that
// manifest.json does not list yet.
func (c *Combiner) relisting(ds *set) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(ds.relisted) > 0
}

// publishOnce replaces manifest.json with every chunk in place, then sends
// the chunk events of this member's commits it covers, and returns the seq
// it covered. Only publish (or repair, before anything else runs) calls it.
func (c *Combiner) publishOnce(ctx context.Context, ds *set) (uint64, error) {
	// A manifest takes longer to write as the dataset grows: space the
	// writes at least ten times that apart, so that one write lists the
	// commits finished meanwhile instead of each paying for its own, and
	// writing takes at most a tenth of the time.
	if wait := min(10*ds.wrote, maxManifestWait) - time.Since(ds.writtenAt); wait > 0 {
		time.Sleep(wait)
	}
	c.mu.Lock()
	upto := listable(ds)
	add := ds.chunks[ds.listed:ds.placed]
	relisted := ds.relisted
	ds.relisted = nil
	var events []*wire.Chunk
	for _, ch := range ds.unannounced {
		if ch.Seq > upto {
			break
		}
		events = append(events, ch)
	}
	c.mu.Unlock()
	for _, ch := range add {
		ds.manifest.Add(ch)
	}
	ds.listed += len(add)
	for _, s := range relisted {
		ds.manifest.Replace(s.new)
	}
	if len(add) > 0 || len(relisted) > 0 || ds.stale {
		ds.stale = true
		start := time.Now()
		if err := dataset.WriteManifest(c.cfg.Out, ds.manifest); err != nil {
			c.mu.Lock()
			ds.relisted = append(relisted, ds.relisted...)
			c.mu.Unlock()
			return 0, fmt.Errorf("write manifest: %w", err)
		}
		ds.stale = false
		ds.writtenAt, ds.wrote = time.Now(), time.Since(start)
	}
	// manifest.json lists the rewrites' files: the replaced ones go.
	for _, s := range relisted {
		if s.old.File == s.new.File {
			continue
		}
		if err := c.retire(ds, s.old.File, s.old.AdoptedFrom != "" && s.old.Replaces == ""); err != nil {
			c.cfg.Logger.Error("retire a rewritten chunk's old file; the next start retires it", "dataset", ds.name, "file", s.old.File, "err", err)
		}
	}
	if len(events) == 0 {
		return upto, nil
	}
	c.failpoint(stepManifest)
	for _, ch := range events {
		c.announce(ctx, ch)
	}
	c.mu.Lock()
	ds.unannounced = ds.unannounced[len(events):]
	c.mu.Unlock()
	c.failpoint(stepAnnounced)
	return upto, nil
}

// placeAll puts the files of every committed chunk of ds in its folder.
// Callers hold ds.commit.
func (c *Combiner) placeAll(ctx context.Context, ds *set) error {
	c.mu.Lock()
	todo := slices.Clone(ds.chunks[ds.placed:])
	c.mu.Unlock()
	for _, ch := range todo {
		if err := c.place(ctx, ds, ch); err != nil {
			return err
		}
		c.mu.Lock()
		ds.placed++
		c.mu.Unlock()
	}
	return c.placeSuperseded(ctx, ds)
}

// place gives a committed chunk's file its name in the dataset folder: the
// pending file is renamed, or, when a crash lost it, the chunk is downloaded
// from the chunks object store.
func (c *Combiner) place(ctx context.Context, ds *set, ch *wire.Chunk) error {
	final := filepath.Join(ds.dir, ch.File)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	pending := filepath.Join(ds.dir, dataset.PendingFile(ch.SHA256, chunk.Format(ch.Format)))
	if err := os.Rename(pending, final); err != nil {
		if c.chunks == nil || ch.Object == "" {
			return fmt.Errorf("chunk %d: file lost and not in the chunks object store: %w", ch.Seq, err)
		}
		if err := c.download(ctx, ch, final); err != nil {
			return err
		}
	}
	return dataset.SyncDir(ds.dir)
}

// download restores a committed chunk file from the chunks object store.
func (c *Combiner) download(ctx context.Context, ch *wire.Chunk, final string) error {
	if err := dataset.DownloadChunk(ctx, c.chunks, ch, final); err != nil {
		return fmt.Errorf("restore %w", err)
	}
	return nil
}

// announce publishes the chunk event; a failure is logged, the commit stands,
// and a restart announces what was missed.
func (c *Combiner) announce(ctx context.Context, ch *wire.Chunk) {
	data, err := wire.Encode(ch)
	if err == nil {
		id := wire.ChunkMsgID(ch.Dataset, ch.Seq)
		err = runner.Retry(ctx, announceRetry, nil, func() error {
			return runner.Publish(ctx, c.js, subjectOf(ch.Dataset), data, id, requestTimeout, nil)
		})
	}
	if err != nil {
		c.cfg.Logger.Error("announce chunk", "dataset", ch.Dataset, "seq", ch.Seq, "err", err)
	}
}

// announceRetry is how a chunk event is published again after a failure.
var announceRetry = runner.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second, Tries: 5}
