package dataset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A Follower is the trainer's side of trainfeed: it mirrors a dataset's
// committed chunks and its manifest into a local folder as they are
// committed, through NATS alone, verifying every chunk's sha256, and
// replaces the chunks a widening rewrote. It resumes where its folder's
// manifest stops.

// FollowConfig says what a Follower follows and where it puts it.
type FollowConfig struct {
	// Dataset to follow.
	Dataset string
	// Out is the folder; the dataset goes to Out/<dataset>/ like combine's output.
	Out string
	// From skips chunks with a lower sequence number. 0: resume after the
	// last chunk of the folder's manifest, or start at the beginning.
	From uint64
	// OnChunk, if set, is called after each chunk is in place and listed,
	// and again, with Replaces set, when a rewrite in a widened schema
	// replaced its file.
	OnChunk func(ch *wire.Chunk)
	// Logger receives one line per chunk. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports settings that cannot work.
func (c FollowConfig) Validate() error {
	if !wire.ValidDataset(c.Dataset) {
		return fmt.Errorf("follow: invalid dataset name %q", c.Dataset)
	}
	if c.Out == "" {
		return errors.New("follow: output folder is required")
	}
	return nil
}

// Follower mirrors one
type Follower struct {
	js       jetstream.JetStream
	manifest jetstream.KeyValue
	chunks   jetstream.ObjectStore
	cfg      FollowConfig
}

// NewFollower returns a follower; it starts nothing.
func NewFollower(js jetstream.JetStream, manifest jetstream.KeyValue, chunks jetstream.ObjectStore, cfg FollowConfig) (*Follower, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Follower{js: js, manifest: manifest, chunks: chunks, cfg: cfg}, nil
}

// Run mirrors chunks as their events arrive until ctx ends, and then
// returns nil.
func (f *Follower) Run(ctx context.Context) error {
	m, err := ReadManifest(f.cfg.Out, f.cfg.Dataset)
	if errors.Is(err, os.ErrNotExist) {
		m = NewManifest(f.cfg.Dataset)
	} else if err != nil {
		return err
	}
	have := m.LastSeq()
	if f.cfg.From > 0 && f.cfg.From-1 > have {
		have = f.cfg.From - 1
	}
	rewrites := topology.RewriteSubject(f.cfg.Dataset)
	cons, err := f.js.OrderedConsumer(ctx, topology.StreamChunks, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topology.Subject(topology.SubjectChunks, f.cfg.Dataset), rewrites},
	})
	if err != nil {
		return fmt.Errorf("follow %s: %w", f.cfg.Dataset, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", f.cfg.Dataset, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { <-ctx.Done(); it.Stop() }) // ends the wait in Next below
	// A chunk whose download ctx's end cut short is not in the manifest
	// yet, and its temp file is gone: the next start fetches it again.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			f.cfg.Logger.Warn("follow", "dataset", f.cfg.Dataset, "err", err)
			continue
		}
		var ch wire.Chunk
		if err := wire.Decode(msg.Data(), &ch); err != nil {
			f.cfg.Logger.Warn("follow: skipping malformed chunk event", "err", err)
			continue
		}
		if msg.Subject() == rewrites {
			// A chunk written again in a widened schema: one this folder
			// has is replaced; a later one is fetched as it is now.
			if ch.Seq <= have {
				// As it is now: an older event's file may be gone.
				cur, err := f.entry(ctx, ch.Seq)
				if err != nil {
					return stopped(err)
				}
				if err := f.replace(ctx, m, cur); err != nil {
					return stopped(err)
				}
			}
			continue
		}
		if ch.Seq <= have {
			continue
		}
		// The event tells the chunk as committed; the entry, as it is now.
		cur, err := f.entry(ctx, ch.Seq)
		if err != nil {
			return stopped(err)
		}
		ch = *cur
		// Events may arrive out of order when a member repaired a crash: the
		// manifest bucket has every entry, so fill the gap from it.
		for seq := have + 1; seq < ch.Seq; seq++ {
			missing, err := f.entry(ctx, seq)
			if err != nil {
				return stopped(err)
			}
			if err := f.add(ctx, m, missing); err != nil {
				return stopped(err)
			}
		}
		if err := f.add(ctx, m, &ch); err != nil {
			return stopped(err)
		}
		have = ch.Seq
	}
}

func (f *Follower) entry(ctx context.Context, seq uint64) (*wire.Chunk, error) {
	e, err := f.manifest.Get(ctx, topology.ManifestKey(f.cfg.Dataset, seq))
	if err != nil {
		return nil, fmt.Errorf("follow %s: chunk %d: %w", f.cfg.Dataset, seq, err)
	}
	var ch wire.Chunk
	if err := wire.Decode(e.Value(), &ch); err != nil {
		return nil, fmt.Errorf("follow %s: chunk %d: %w", f.cfg.Dataset, seq, err)
	}
	return &ch, nil
}

// add downloads a chunk into place, then lists it in the manifest.
func (f *Follower) add(ctx context.Context, m *Manifest, ch *wire.Chunk) error {
	if ch.Records == 0 {
		return nil
	}
	if err := f.download(ctx, ch); err != nil {
		return err
	}
	m.Add(ch)
	if err := WriteManifest(f.cfg.Out, m); err != nil {
		return fmt.Errorf("follow %s: %w", f.cfg.Dataset, err)
	}
	f.cfg.Logger.Info("chunk", "dataset", ch.Dataset, "seq", ch.Seq, "records", ch.Records, "file", ch.File)
	if f.cfg.OnChunk != nil {
		f.cfg.OnChunk(ch)
	}
	return nil
}

// replace puts a rewritten chunk in the place of the file the folder has
// for its seq, lists it, and then removes the replaced file.
func (f *Follower) replace(ctx context.Context, m *Manifest, ch *wire.Chunk) error {
	i := slices.IndexFunc(m.Chunks, func(e *wire.Chunk) bool { return e.Seq == ch.Seq })
	if i < 0 || ch.Records == 0 || (m.Chunks[i].SHA256 == ch.SHA256 && m.Chunks[i].SchemaVersion == ch.SchemaVersion) {
		return nil // not listed here, or this rewrite is in place already
	}
	old := m.Chunks[i].File
	if old != ch.File { // else the same bytes in the new types: only the entry changes
		if err := f.download(ctx, ch); err != nil {
			return err
		}
	}
	m.Replace(ch)
	if err := WriteManifest(f.cfg.Out, m); err != nil {
		return fmt.Errorf("follow %s: %w", f.cfg.Dataset, err)
	}
	if old != ch.File {
		if err := os.Remove(filepath.Join(f.cfg.Out, ch.Dataset, old)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("follow %s: %w", f.cfg.Dataset, err)
		}
	}
	f.cfg.Logger.Info("rewritten chunk", "dataset", ch.Dataset, "seq", ch.Seq, "version", ch.SchemaVersion, "file", ch.File, "replaces", old)
	if f.cfg.OnChunk != nil {
		f.cfg.OnChunk(ch)
	}
	return nil
}

func (f *Follower) download(ctx context.Context, ch *wire.Chunk) error {
	if ch.Object == "" {
		return fmt.Errorf("follow %s: chunk %d was not uploaded to the %s object store", ch.Dataset, ch.Seq, topology.BucketChunks)
	}
	dir := filepath.Join(f.cfg.Out, ch.Dataset)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := DownloadChunk(ctx, f.chunks, ch, filepath.Join(dir, ch.File)); err != nil {
		return fmt.Errorf("follow %s: %w", ch.Dataset, err)
	}
	return nil
}
