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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A start reads the ledger, decides who owns each dataset folder and
// repairs what a crash interrupted: files put in place, leftovers of
// uncommitted chunks removed, manifest.json rewritten, missed chunk events
// sent.

// load reads every committed entry into the ledger, then repairs each
// dataset: files of committed chunks a crash left pending are put in place,
// leftovers of uncommitted chunks removed, manifest.json rewritten and
// missed chunk events published.
func (c *Combiner) load(ctx context.Context, updates <-chan jetstream.KeyValueEntry) error {
	ledger, err := ledgerID(ctx, c.kv)
	if err != nil {
		return fmt.Errorf("combine: %w", err)
	}
	c.ledger = ledger
	var chunks []*wire.Chunk
	for e := range updates {
		if e == nil {
			break // every committed entry has been read
		}
		var ch wire.Chunk
		if err := wire.Decode(e.Value(), &ch); err != nil {
			return fmt.Errorf("combine: manifest entry %s: %w", e.Key(), err)
		}
		chunks = append(chunks, &ch)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	slices.SortFunc(chunks, func(a, b *wire.Chunk) int {
		return cmp.Or(strings.Compare(a.Dataset, b.Dataset), cmp.Compare(a.Seq, b.Seq))
	})
	for _, ch := range chunks {
		c.apply(c.dataset(ch.Dataset), ch)
	}
	// Folders of datasets without a commit yet may hold a crash's leftovers too.
	dirs, err := os.ReadDir(c.cfg.Out)
	if err != nil {
		return fmt.Errorf("combine: %w", err)
	}
	for _, d := range dirs {
		if d.IsDir() && wire.ValidDataset(d.Name()) {
			c.dataset(d.Name())
		}
	}
	// Decide every folder's owner before repairing any, so that a start
	// that refuses has touched nothing.
	var repairs []*set
	for _, ds := range c.sets {
		repair, err := c.own(ds)
		if err != nil {
			return fmt.Errorf("combine: %w", err)
		}
		if ds.foreign != nil {
			c.cfg.Logger.Info("leaving alone a dataset folder another ledger wrote until a batch of it arrives",
				"dataset", ds.name, "ledger", ds.foreign.Ledger, "chunks", len(ds.foreign.Chunks))
		}
		if repair {
			repairs = append(repairs, ds)
		}
	}
	for _, ds := range repairs {
		if err := c.repair(ctx, ds); err != nil {
			return fmt.Errorf("combine: repair %s: %w", ds.name, err)
		}
	}
	return nil
}

// repair finishes the commits of ds that a crash interrupted.
func (c *Combiner) repair(ctx context.Context, ds *set) error {
	if err := c.placeAll(ctx, ds); err != nil {
		return err
	}
	if err := c.clean(ds); err != nil {
		return err
	}
	if _, err := c.publishOnce(ctx, ds); err != nil {
		return err
	}
	if err := c.retireReplaced(ds); err != nil {
		return err
	}
	ds.claimed = true
	// Announce what the chunk stream has not seen.
	var announced uint64
	s, err := c.js.Stream(ctx, topology.StreamChunks)
	if err != nil {
		return err
	}
	last, err := s.GetLastMsgForSubject(ctx, subjectOf(ds.name))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return err
	default:
		var ch wire.Chunk
		if err := wire.Decode(last.Data, &ch); err == nil {
			announced = ch.Seq
		}
	}
	for _, ch := range ds.all {
		if ch.Seq > announced {
			c.announce(ctx, ch)
		}
	}
	return nil
}

// clean removes the pending and temporary files in the dataset's folder
// that no committed chunk lists: leftovers of this ledger's commits a crash
// stopped before their commit point. A chunk-* file is named only at a
// commit, so one the ledger does not list is left where it is.
func (c *Combiner) clean(ds *set) error {
	entries, err := os.ReadDir(ds.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean %s: %w", ds.dir, err)
	}
	listed := map[string]bool{dataset.ManifestFile: true}
	for _, ch := range ds.chunks {
		listed[ch.File] = true
		if ch.Replaces != "" {
			listed[ch.Replaces] = true // retired once manifest.json lists its replacement
		}
	}
	for _, e := range entries {
		switch {
		case e.IsDir() || listed[e.Name()]:
			continue
		case dataset.IsCommittedName(e.Name()):
			// Only a commit names a file so: not a leftover of this ledger's.
			c.cfg.Logger.Warn("leaving in place a chunk file the ledger does not list", "dataset", ds.name, "file", e.Name())
			continue
		case !dataset.IsLeftoverName(e.Name()):
			continue
		}
		c.cfg.Logger.Info("removing uncommitted file", "dataset", ds.name, "file", e.Name())
		if err := os.Remove(filepath.Join(ds.dir, e.Name())); err != nil {
			return fmt.Errorf("clean %s: %w", ds.dir, err)
		}
	}
	return nil
}
