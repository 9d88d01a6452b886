package combine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A dataset folder belongs to the ledger — the manifest bucket — whose name
// its manifest.json carries. A combiner repairs, cleans and rewrites only
// the folders of its own ledger. A folder another ledger wrote (another
// --store, or a store that was removed to start afresh) is left exactly as
// it is until a batch of that dataset arrives; then the combiner adopts it:
// the chunks its manifest lists become the ledger's first entries, so new
// chunks continue its sequence and redelivered parts are recognised.

// ledgerID names the manifest bucket: its stream and when the stream was
// created, so a bucket made anew under the same name is another ledger.
func ledgerID(ctx context.Context, kv jetstream.KeyValue) (string, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("manifest bucket status: %w", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return "", fmt.Errorf("manifest bucket %s: no stream info", st.Bucket())
	}
	info := bs.StreamInfo()
	return info.Config.Name + "@" + info.Created.UTC().Format(time.RFC3339Nano), nil
}

// own decides, at start, whether the folder of ds is this ledger's to
// repair. A folder another ledger wrote is marked foreign, left alone until
// adopt takes it in; a folder no manifest names is not a dataset and is
// forgotten. A folder whose manifest names another ledger while this ledger
// holds chunks of the same dataset is written by two ledgers: an error.
// Callers run before Run's loop.
func (c *Combiner) own(ds *set) (repair bool, err error) {
	m, err := dataset.ReadManifest(c.cfg.Out, ds.name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if len(ds.all) > 0 {
			return true, nil // ours, its manifest.json lost: repair writes it again
		}
		files, err := dataset.ChunkFiles(ds.dir)
		if err != nil {
			return false, err
		}
		if len(files) == 0 {
			// Not a dataset anyone wrote: left alone, claimed by a first batch.
			delete(c.sets, ds.name)
			return false, nil
		}
		ds.foreign = dataset.NewManifest(ds.name) // chunk files no manifest lists: adopt refuses them
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%w; move the folder away or fix the file, then start again", err)
	case m.Ledger == c.ledger:
		ds.claimed = true
		return true, nil
	case len(ds.all) > 0 && m.Ledger == "":
		ds.claimed = true
		return true, nil // written before manifests named their ledger
	case len(ds.all) > 0:
		return false, fmt.Errorf("dataset %s in %s was written by ledger %s, but this ledger (%s) holds chunks of it too: "+
			"run with the store that wrote the folder, or give another output folder", ds.name, ds.dir, m.Ledger, c.ledger)
	default:
		m.Dataset = ds.name
		ds.foreign = m
		return false, nil
	}
}

// adopt makes the folder another ledger wrote part of this ledger: each
// chunk its manifest lists, checked against its file, becomes an entry
// (uploaded to the chunks object store when there is one), then manifest.json
// is written again naming this ledger. Files the manifest does not list are
// left where they are. Members adopting at once agree through the entries'
// creation.
func (c *Combiner) adopt(ctx context.Context, ds *set) error {
	ds.commit.Lock()
	defer ds.commit.Unlock()
	c.mu.Lock()
	m := ds.foreign
	c.mu.Unlock()
	if m == nil {
		return nil // adopted meanwhile, here or by another member
	}
	if err := unlisted(ds.dir, m); err != nil {
		return runner.Permanent(fmt.Errorf("adopt %s: %w", ds.name, err))
	}
	from := cmp.Or(m.Ledger, "unnamed")
	var entries, created []*wire.Chunk
	for _, listed := range m.Chunks {
		ch := *listed
		ch.Dataset, ch.Schema, ch.Object, ch.AdoptedFrom = ds.name, m.SchemaOf(listed), "", from
		path := filepath.Join(ds.dir, ch.File)
		fi, err := os.Stat(path)
		if err != nil {
			return runner.Permanent(fmt.Errorf("adopt %s: chunk %d listed by its manifest: %w", ds.name, ch.Seq, err))
		}
		if fi.Size() != ch.Bytes {
			return runner.Permanent(fmt.Errorf("adopt %s: chunk %d is %d bytes, its manifest says %d", ds.name, ch.Seq, fi.Size(), ch.Bytes))
		}
		if c.chunks != nil {
			if err := c.upload(ctx, ds, &ch, path); err != nil {
				return fmt.Errorf("adopt %s: %w", ds.name, err)
			}
		}
		made, err := c.createEntry(ctx, &ch)
		if err != nil {
			return fmt.Errorf("adopt %s: %w", ds.name, err)
		}
		entries = append(entries, &ch)
		if made {
			created = append(created, &ch)
		}
	}
	c.mu.Lock()
	if ds.foreign != nil {
		for _, ch := range entries {
			c.apply(ds, ch)
		}
		ds.foreign = nil
	}
	// The entries this member created are announced like its commits, so
	// that followers and run's tracker learn the adopted chunks.
	for _, ch := range created {
		if n := len(ds.unannounced); n == 0 || ds.unannounced[n-1].Seq < ch.Seq {
			ds.unannounced = append(ds.unannounced, ch)
		}
	}
	c.mu.Unlock()
	c.cfg.Logger.Info("adopted dataset another ledger wrote", "dataset", ds.name, "ledger", m.Ledger, "chunks", len(m.Chunks), "records", m.Records)
	c.syncLocked(ctx, ds)
	return c.claim(ds)
}

// unlisted refuses a folder holding chunk files its manifest does not
// list: a glob read of the folder would mix them into the dataset, and they
// are not this ledger's to remove.
func unlisted(dir string, m *dataset.Manifest) error {
	files, err := dataset.ChunkFiles(dir)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, ch := range m.Chunks {
		listed[ch.File] = true
	}
	var extra []string
	for _, f := range files {
		if !listed[f] {
			extra = append(extra, f)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	return fmt.Errorf("%s holds %d chunk files its manifest.json does not list (%s): "+
		"move them out of the folder, or run with the store that wrote them, then replay the dead letters",
		dir, len(extra), strings.Join(extra[:min(len(extra), 3)], ", "))
}

// createEntry creates the entry of an adopted chunk and reports whether
// this call created it; one another member created first must list the
// same file.
func (c *Combiner) createEntry(ctx context.Context, ch *wire.Chunk) (bool, error) {
	data, err := wire.Encode(ch)
	if err != nil {
		return false, err
	}
	key := entryKey(ch.Dataset, ch.Seq)
	rctx, cancel := request(ctx)
	defer cancel()
	_, err = c.kv.Create(rctx, key, data)
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return err == nil, err
	}
	got, err := c.readEntry(ctx, key)
	if err != nil {
		return false, err
	}
	if got.File != ch.File || got.SHA256 != ch.SHA256 {
		return false, fmt.Errorf("chunk %d: the ledger lists %s, the folder's manifest %s", ch.Seq, got.File, ch.File)
	}
	return false, nil
}

// claim writes manifest.json naming this ledger before the first file of
// ds is written, so that a later start knows the folder and what in it is
// its own. It waits for a publisher under way, whose write claims too.
func (c *Combiner) claim(ds *set) error {
	ds.pubMu.Lock()
	defer ds.pubMu.Unlock()
	for ds.publishing {
		ds.pubDone.Wait()
	}
	if ds.claimed {
		return nil
	}
	if err := dataset.WriteManifest(c.cfg.Out, ds.manifest); err != nil {
		return fmt.Errorf("claim %s: write manifest: %w", ds.name, err)
	}
	ds.claimed = true
	return nil
}
