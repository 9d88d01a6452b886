package combine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Chunk objects no manifest entry lists are uploads whose commit never
// happened: a member killed between upload and entry, a commit that failed
// after its upload, or one whose batches another member committed first.
// Run sweeps them out of the chunks object store now and then.
const (
	// orphanAge is how old an unlisted chunk object must be before a sweep
	// deletes it: far longer than a commit may take from upload to manifest
	// entry (2 × commitTimeout), and than clocks of members may differ.
	orphanAge = 15 * time.Minute
	// firstSweep is when Run sweeps first: after the start's own work, and
	// not at all in a short job.
	firstSweep = time.Minute
	// sweepEvery is how often Run sweeps after that.
	sweepEvery = time.Hour
)

// sweepLoop sweeps the chunks object store until ctx ends.
func (c *Combiner) sweepLoop(ctx context.Context) {
	t := time.NewTimer(firstSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := c.sweep(ctx, time.Now().Add(-orphanAge))
		switch {
		case err != nil && ctx.Err() == nil:
			c.cfg.Logger.Warn("sweep chunk objects", "deleted", n, "err", err)
		case n > 0:
			c.cfg.Logger.Info("deleted chunk objects no manifest entry lists", "deleted", n, "min_age", orphanAge)
		}
		t.Reset(sweepEvery)
	}
}

// sweep deletes the chunk objects last written before cutoff that no
// manifest entry in the ledger lists, and returns how many it deleted.
func (c *Combiner) sweep(ctx context.Context, cutoff time.Time) (int, error) {
	infos, err := c.chunks.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list chunk objects: %w", err)
	}
	// The ledger is read after the listing, so it holds every entry
	// created before an object was listed.
	listed := map[string]bool{}
	c.mu.Lock()
	if c.unreadable {
		c.mu.Unlock()
		return 0, errors.New("a manifest entry could not be read: not sweeping")
	}
	for _, ds := range c.sets {
		for _, ch := range ds.all {
			if ch.Object != "" {
				listed[ch.Object] = true
			}
		}
	}
	c.mu.Unlock()
	var n int
	for _, info := range infos {
		if listed[info.Name] || !info.ModTime.Before(cutoff) {
			continue
		}
		// A commit of the same records uploads the same name again, which
		// renews its time: look once more right before deleting.
		cur, err := c.chunks.GetInfo(ctx, info.Name)
		if err != nil || !cur.ModTime.Before(cutoff) {
			continue
		}
		if err := c.chunks.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return n, fmt.Errorf("delete chunk object %s: %w", info.Name, err)
		}
		n++
	}
	return n, nil
}
