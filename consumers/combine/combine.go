// Package combine is the combine stage: it assembles record batches into
// chunk files (Parquet or JSON lines) and commits each chunk exactly once —
// file, then manifest entry, then acknowledgements — so a dataset grows while
// the stream runs and a trainer never sees a duplicate, a hole or a
// half-written file.
//
// A chunk's commit point is the creation of its entry in the manifest
// key-value bucket. Every entry lists the batches (source and part) it holds;
// a redelivered batch that an entry already lists is acknowledged without
// being written again.
package combine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/objects"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// stopRewrites bounds the rewrites Run does once ctx ended.
const stopRewrites = 2 * commitTimeout

// errStopped is returned to handlers that arrive after the combiner stopped;
// the runner hands their messages back.
var errStopped = fmt.Errorf("combine stopped: %w", runner.ErrStopping)

// Combiner is the combine stage. Run it with Run and hand its Handle to a
// runner.Runner on the combine consumer.
type Combiner struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	chunks  jetstream.ObjectStore // nil: chunks are not uploaded
	objects *objects.Lazy         // chunks, written by digest
	cfg     Config
	ledger  string // the manifest bucket's identity (ledgerID), set by Run
	// failpoint is called after each commit step; tests use it to crash there.
	failpoint func(step string)
	// encoders bounds the chunks encoded at once (CPU and encoder memory).
	encoders chan struct{}

	ready chan struct{} // closed once the ledger is loaded
	mu    sync.Mutex
	sets  map[string]*set
	done  bool
	// unreadable is set when a manifest entry could not be decoded: the
	// ledger may lack a chunk, so nothing is swept.
	unreadable bool
	wg         sync.WaitGroup // Run's goroutines: flushes, syncs, the sweep
	flush      chan struct{}  // Flush's requests to Run
	rewrite    chan struct{}  // requests to the rewrite loop
}

// New returns a combiner writing under cfg.Out, committing to kv (the
// manifest bucket) and, unless chunks is nil, uploading every chunk to the
// chunks object store so trainers elsewhere can follow. It starts nothing.
func New(js jetstream.JetStream, kv jetstream.KeyValue, chunks jetstream.ObjectStore, cfg Config) (*Combiner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Combiner{
		js:        js,
		kv:        kv,
		chunks:    chunks,
		objects:   objects.NewLazy(js, chunks),
		cfg:       cfg,
		failpoint: func(string) {},
		encoders:  make(chan struct{}, runtime.GOMAXPROCS(0)),
		ready:     make(chan struct{}),
		flush:     make(chan struct{}, 1),
		rewrite:   make(chan struct{}, 1),
		sets:      map[string]*set{},
	}, nil
}

// set is one dataset's state: what is committed and what is filling.
type set struct {
	name   string
	dir    string
	commit sync.Mutex // serialises commits, so sequence order is file order

	// Guarded by Combiner.mu.
	committed   map[string]bool     // part keys in committed chunks
	all         []*wire.Chunk       // every committed entry, records or not, in seq order
	placed      int                 // leading chunks whose files are known to be in dir
	syncing     bool                // a sync of dir and manifest.json is under way
	committing  uint64              // the seq this member is creating an entry for, 0 if none
	held        map[string]*pending // part keys in the filling or committing chunks
	filling     *pending
	nextSeq     uint64
	chunks      []*wire.Chunk
	schema      []wire.Field    // the dataset's columns and types: only ever extended
	version     int             // schema's version; 0 before the dataset had versions
	lossWarned  map[string]bool // columns whose nulled values were logged
	unannounced []*wire.Chunk   // this member's commits whose chunk event is not sent yet, in seq order
	// superseded pairs each applied rewrite (new) whose file is not in
	// place yet with the entry it replaced (old); relisted holds the
	// rewrites placed whose manifest.json entry is still the old one.
	superseded []supersede
	relisted   []supersede
	// rewrote holds this member's rewrites whose event is not sent yet.
	rewrote []*wire.Chunk
	// foreign is the manifest of a folder another ledger wrote, left
	// alone until a batch of the dataset arrives and adopt takes it in.
	foreign *dataset.Manifest

	// Publishing — manifest.json, then chunk events — is done by one
	// caller at a time for every commit finished meanwhile (group commit),
	// so a slow disk costs fewer manifest writes, not a longer queue.
	pubMu      sync.Mutex
	pubDone    sync.Cond // broadcast on pubMu when a publisher ends
	publishing bool
	published  uint64            // manifest.json lists, and events announce, every commit up to this seq
	manifest   *dataset.Manifest // what manifest.json lists; touched by the publisher only
	listed     int               // ds.chunks[:listed] are in manifest; touched by the publisher only
	stale      bool              // manifest holds chunks manifest.json does not; publisher only
	writtenAt  time.Time         // when manifest.json was last written; publisher only
	wrote      time.Duration     // how long that write took; publisher only
	claimed    bool              // manifest.json names this ledger; guarded by pubMu
}

// pending is a chunk being filled; its waiters learn the commit's result.
type pending struct {
	batches []*wire.RecordBatch
	rows    int
	bytes   int64
	oldest  time.Time
	last    time.Time
	done    chan struct{}
	err     error
	// rejected holds the error of each batch (by part key) the commit
	// left out: values that do not fit the dataset under MismatchFail.
	rejected map[string]error
}

func newPending() *pending { return &pending{done: make(chan struct{})} }

// Run loads the committed chunks, repairs what a crash interrupted, then
// flushes chunks that grow old or idle, follows other members' commits and
// sweeps uploads no commit lists out of the chunks object store until ctx
// ends; then it flushes what is pending and returns.
func (c *Combiner) Run(ctx context.Context) error {
	if err := os.MkdirAll(c.cfg.Out, 0o755); err != nil {
		return fmt.Errorf("combine: %w", err)
	}
	w, err := c.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("combine: read manifest: %w", err)
	}
	defer w.Stop()
	if err := c.load(ctx, w.Updates()); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	close(c.ready)
	c.wg.Go(func() { c.rewriteLoop(ctx) })
	c.rewriteSoon() // rewrites a crash interrupted
	if c.chunks != nil {
		c.wg.Go(func() { c.sweepLoop(ctx) })
	}
	tick := time.NewTicker(min(c.cfg.Idle, c.cfg.MaxAge) / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.done = true
			var flush []func()
			for _, ds := range c.sets {
				if f := c.detach(ds); f != nil {
					flush = append(flush, f)
				}
			}
			c.mu.Unlock()
			for _, f := range flush {
				f()
			}
			c.wg.Wait()
			// The last commits may have widened a schema: leave every
			// chunk in it when that is done in time, or to the next start.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopRewrites)
			defer cancel()
			if err := c.rewriteAll(rctx); err != nil {
				c.cfg.Logger.Warn("rewrite chunks in a widened schema: the next start goes on", "err", err)
			}
			return nil
		case e := <-w.Updates():
			// Another member's commit (or our own, again): the ledger learns it.
			if e == nil {
				continue
			}
			var ch wire.Chunk
			if err := wire.Decode(e.Value(), &ch); err != nil {
				c.cfg.Logger.Error("manifest entry", "key", e.Key(), "err", err)
				c.mu.Lock()
				c.unreadable = true // the chunk it lists must not be swept
				c.mu.Unlock()
				continue
			}
			c.mu.Lock()
			ds := c.dataset(ch.Dataset)
			if c.apply(ds, &ch) && ch.Seq != ds.committing && !ds.syncing {
				// A commit this member did not finish itself: another
				// member's, or its own whose reply was lost. Bring the
				// folder and manifest.json up to it.
				ds.syncing = true
				c.wg.Go(func() { c.sync(ds) })
			}
			c.mu.Unlock()
		case <-c.flush:
			c.mu.Lock()
			for _, ds := range c.sets {
				if f := c.detach(ds); f != nil {
					c.wg.Go(f)
				}
			}
			c.mu.Unlock()
		case now := <-tick.C:
			c.mu.Lock()
			for _, ds := range c.sets {
				p := ds.filling
				if p == nil || (now.Sub(p.oldest) < c.cfg.MaxAge && now.Sub(p.last) < c.cfg.Idle) {
					continue
				}
				if f := c.detach(ds); f != nil {
					c.wg.Go(f)
				}
			}
			c.mu.Unlock()
		}
	}
}

// Flush asks Run to commit every filling chunk now, without waiting for
// it to fill, grow old or idle: for callers that know no more input is
// coming for a while. It does not wait for the commits.
func (c *Combiner) Flush() {
	select {
	case c.flush <- struct{}{}:
	default: // one is asked for already
	}
}

// Filling reports whether some dataset has a chunk filling.
func (c *Combiner) Filling() bool {
	select {
	case <-c.ready:
	default:
		return false // Run is still loading the ledger, without c.mu
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ds := range c.sets {
		if ds.filling != nil {
			return true
		}
	}
	return false
}

// dataset returns the state of name, creating it. Callers hold c.mu or run before Run's loop.
func (c *Combiner) dataset(name string) *set {
	ds := c.sets[name]
	if ds == nil {
		ds = &set{name: name, dir: filepath.Join(c.cfg.Out, name), committed: map[string]bool{}, held: map[string]*pending{}, lossWarned: map[string]bool{}, nextSeq: 1}
		ds.pubDone.L = &ds.pubMu
		ds.manifest = dataset.NewManifest(name)
		ds.manifest.Format = string(c.cfg.Format)
		ds.manifest.Ledger = c.ledger
		ds.stale = true // written at least once, by repair
		c.sets[name] = ds
	}
	return ds
}

// apply records a committed chunk in the ledger. Callers hold c.mu.
func (c *Combiner) apply(ds *set, ch *wire.Chunk) bool {
	for _, p := range ch.Parts {
		ds.committed[wire.PartKey(p.SourceID, p.Part)] = true
	}
	ds.foreign = nil // the ledger knows the dataset now: another member adopted it
	if ch.Seq < ds.nextSeq {
		return c.replace(ds, ch) // applied, unless a rewrite replaced it
	}
	ds.nextSeq = ch.Seq + 1
	ds.all = append(ds.all, ch)
	if ch.Records > 0 {
		ds.chunks = append(ds.chunks, ch)
		switch {
		case ch.SchemaVersion == 0:
			ds.schema = chunk.MergeSchema(ds.schema, ch.Schema) // written before schemas were fixed
		case ch.SchemaVersion > ds.version:
			ds.schema, ds.version = ch.Schema, ch.SchemaVersion
			c.rewriteSoon()
		}
	}
	return true
}

// sync puts the files of every committed chunk of ds in place and rewrites
// manifest.json, after commits that reached the ledger from the manifest
// bucket rather than through this member's own finish.
func (c *Combiner) sync(ds *set) {
	ds.commit.Lock()
	defer ds.commit.Unlock()
	c.mu.Lock()
	ds.syncing = false // entries applied from here on schedule another sync
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*commitTimeout)
	defer cancel()
	c.syncLocked(ctx, ds)
}

// syncLocked is sync for callers holding ds.commit.
func (c *Combiner) syncLocked(ctx context.Context, ds *set) {
	if err := c.placeAll(ctx, ds); err != nil {
		c.cfg.Logger.Error("sync chunk files", "dataset", ds.name, "err", err)
		return
	}
	c.mu.Lock()
	upto := listable(ds)
	c.mu.Unlock()
	if err := c.publish(ctx, ds, upto); err != nil {
		c.cfg.Logger.Error("sync manifest", "dataset", ds.name, "err", err)
	}
}

// Handle adds a record batch to its dataset's filling chunk and returns once
// that chunk is committed, so the runner acks only committed batches.
func (c *Combiner) Handle(ctx context.Context, m *runner.Msg) error {
	var b wire.RecordBatch
	if err := wire.Decode(m.Data, &b); err != nil {
		return runner.Permanent(fmt.Errorf("malformed record batch: %w", err))
	}
	if b.Dataset == "" {
		b.Dataset = m.Dataset
	}
	if !wire.ValidDataset(b.Dataset) {
		return runner.Permanent(fmt.Errorf("record batch: invalid dataset name %q", b.Dataset))
	}
	if err := checkBatch(&b); err != nil {
		return runner.Permanent(fmt.Errorf("record batch %s: %w", b.PartKey(), err))
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}

	key := b.PartKey()
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return errStopped
	}
	ds := c.dataset(b.Dataset)
	if ds.foreign != nil {
		c.mu.Unlock()
		if err := c.adopt(ctx, ds); err != nil {
			return err
		}
		c.mu.Lock()
		if c.done {
			c.mu.Unlock()
			return errStopped
		}
	}
	if ds.committed[key] {
		c.mu.Unlock()
		return nil // a redelivery of a batch already in a chunk
	}
	if held := ds.held[key]; held != nil {
		// Redelivered while held (AckWait ran out): wait for the same commit.
		c.mu.Unlock()
		return wait(ctx, held, key)
	}
	var flushes []func()
	p := ds.filling
	size := batchBytes(&b)
	if p != nil && p.rows > 0 && (p.rows+b.Rows > c.cfg.ChunkRecords || p.bytes+size > c.cfg.ChunkBytes) {
		flushes = append(flushes, c.detach(ds))
		p = nil
	}
	if p == nil {
		p = newPending()
		p.oldest = time.Now()
		ds.filling = p
	}
	p.batches = append(p.batches, &b)
	ds.held[key] = p
	p.rows += b.Rows
	p.bytes += size
	p.last = time.Now()
	if p.rows >= c.cfg.ChunkRecords || p.bytes >= c.cfg.ChunkBytes || len(p.batches) >= c.cfg.MaxHeld {
		flushes = append(flushes, c.detach(ds))
	}
	c.mu.Unlock()
	for _, f := range flushes {
		f()
	}
	return wait(ctx, p, key)
}

func wait(ctx context.Context, p *pending, key string) error {
	select {
	case <-p.done:
		if err := p.rejected[key]; err != nil {
			return err
		}
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// detach takes the filling chunk off ds and returns the func that commits it,
// or nil when nothing is filling. Callers hold c.mu.
func (c *Combiner) detach(ds *set) func() {
	p := ds.filling
	if p == nil {
		return nil
	}
	ds.filling = nil
	return func() {
		p.err = c.commit(ds, p)
		if p.err != nil {
			c.cfg.Logger.Error("commit chunk", "dataset", ds.name, "batches", len(p.batches), "err", p.err)
		}
		c.mu.Lock()
		for _, b := range p.batches {
			delete(ds.held, b.PartKey())
		}
		c.mu.Unlock()
		close(p.done)
	}
}

func checkBatch(b *wire.RecordBatch) error {
	if b.SourceID == "" {
		return errors.New("no source id")
	}
	if b.Rows < 0 || b.Part < 0 {
		return fmt.Errorf("negative rows %d or part %d", b.Rows, b.Part)
	}
	for i := range b.Columns {
		col := &b.Columns[i]
		if col.Len() != b.Rows {
			return fmt.Errorf("column %q holds %d values for %d rows", col.Name, col.Len(), b.Rows)
		}
		if len(col.Nulls) != 0 && len(col.Nulls) != b.Rows {
			return fmt.Errorf("column %q has %d null flags for %d rows", col.Name, len(col.Nulls), b.Rows)
		}
	}
	return nil
}

// batchBytes estimates the bytes of a batch's values.
func batchBytes(b *wire.RecordBatch) int64 {
	var n int64
	for i := range b.Columns {
		col := &b.Columns[i]
		switch col.Type {
		case wire.TypeString:
			for _, s := range col.Strings {
				n += int64(len(s))
			}
		case wire.TypeBool:
			n += int64(len(col.Bools))
		default:
			n += 8 * int64(col.Len())
		}
	}
	return n
}

// subjectOf returns the chunk event subject of a dataset.
func subjectOf(dataset string) string { return topology.Subject(topology.SubjectChunks, dataset) }

// Annotate adds the batch's source id and URL to a dead letter.
func (c *Combiner) Annotate(m *runner.Msg, dl *wire.DeadLetter) {
	var b wire.RecordBatch
	if wire.Decode(m.Data, &b) == nil {
		dl.SourceID, dl.URL = b.SourceID, b.URL
	}
}
