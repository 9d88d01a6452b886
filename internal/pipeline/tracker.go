package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Tracked is a source the tracker follows.
type Tracked struct {
	ID, Dataset, URL string
}

// Outcome is what became of one source.
type Outcome struct {
	Tracked
	// Done is true once the source is in the dataset or dead-lettered.
	Done bool
	// Failed names the stage and reason of a dead-lettered source.
	Failed   bool
	Stage    string
	Reason   string
	Attempts uint64
	// Records counts the source's records in committed chunks.
	Records int64
	// Existing is true when the source was in the dataset before tracking began.
	Existing bool
	// Skipped counts the source's malformed rows that were skipped, and
	// Skips lists the first few; Nulled counts its values written as null
	// because they did not fit their dataset column's type.
	Skipped, Nulled int64
	Skips           []wire.SkippedRow
}

type progress struct {
	Outcome
	// recordsAs is the id the fetch stage passed the source's records on
	// under in this run ("" until its outcome is seen): its own, or that of
	// the source that first delivered the same body.
	recordsAs string
}

// parts is what the chunk events say of one source id, tracked or not.
type parts struct {
	seen   map[int]bool
	last   int  // index of the last part, -1 while unknown
	fresh  bool // some part was committed after tracking began
	rows   int64
	chunks map[string]bool // dataset/seq of chunks holding its records
	// skipped and nulled count the rows and values lost on the way; skips
	// lists the first skipped rows.
	skipped, nulled int64
	skips           []wire.SkippedRow
}

// maxSkips is how many skipped rows an outcome lists.
const maxSkips = 3

func (p *parts) complete() bool { return p.last >= 0 && len(p.seen) == p.last+1 }

// Summary is the end state of a tracked set of sources.
type Summary struct {
	Sources, OK, Failed int
	// Existing counts sources that were in their dataset before this run.
	Existing int
	Records  int64
	// Skipped counts the malformed rows of these sources that were
	// skipped; Nulled their values written as null (see Outcome).
	Skipped, Nulled int64
	// Chunks counts the committed chunks that hold records of these sources.
	Chunks   int
	Outcomes []Outcome // failed ones first, then in the order given
	Elapsed  time.Duration
}

// Tracker follows sources through the pipeline by reading the chunk events
// (from the start, so sources committed by an earlier run count) and the
// dead letters (from now on).
type Tracker struct {
	js    jetstream.JetStream
	start time.Time
	order []string

	mu      sync.Mutex
	sources map[string]*progress
	byKey   map[string]string          // fetch.OutcomeKey of a tracked source -> its id
	ids     map[string]*parts          // every source id in the chunk events
	waiting map[string][]*progress     // records-as id -> sources waiting for it
	dead    map[string]wire.DeadLetter // records-as ids dead-lettered after fetch
	chunks  map[string]bool            // dataset/seq holding tracked records
	left    int
	changed chan struct{}
	cancels []func()
	watches sync.WaitGroup
}

// NewTracker returns a tracker of sources. Start it before publishing them.
func NewTracker(js jetstream.JetStream, sources []Tracked) *Tracker {
	t := &Tracker{
		js: js, sources: map[string]*progress{}, byKey: map[string]string{}, ids: map[string]*parts{},
		waiting: map[string][]*progress{}, dead: map[string]wire.DeadLetter{}, chunks: map[string]bool{},
		changed: make(chan struct{}, 1),
	}
	for _, s := range sources {
		if _, dup := t.sources[s.ID]; dup {
			continue
		}
		t.sources[s.ID] = &progress{Outcome: Outcome{Tracked: s}}
		t.byKey[fetch.OutcomeKey(s.Dataset, s.ID)] = s.ID
		t.order = append(t.order, s.ID)
	}
	t.left = len(t.sources)
	return t
}

// Start subscribes to chunk events, dead letters and the fetch stage's
// outcomes.
func (t *Tracker) Start(ctx context.Context) error {
	t.start = time.Now()
	datasets := map[string]bool{}
	for _, p := range t.sources {
		datasets[p.Dataset] = true
	}
	var chunkSubjects, dlqSubjects []string
	for ds := range datasets {
		chunkSubjects = append(chunkSubjects, topology.Subject(topology.SubjectChunks, ds))
		dlqSubjects = append(dlqSubjects, topology.SubjectDLQ+".*."+ds)
	}
	if len(datasets) == 0 {
		return nil
	}
	sort.Strings(chunkSubjects)
	sort.Strings(dlqSubjects)
	// The fetch stage records, per source, which id its records go under;
	// the sources of this run are fetched after Start, so updates suffice.
	cache, err := t.js.KeyValue(ctx, topology.BucketCache)
	if err != nil {
		return fmt.Errorf("track %s: %w", topology.BucketCache, err)
	}
	var keys []string
	for ds := range datasets {
		keys = append(keys, "source."+ds+".*")
	}
	sort.Strings(keys)
	w, err := cache.WatchFiltered(ctx, keys, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("track %s: %w", topology.BucketCache, err)
	}
	t.cancels = append(t.cancels, func() { _ = w.Stop() })
	t.watches.Go(func() {
		for e := range w.Updates() {
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				t.onOutcome(e.Key(), e.Value())
			}
		}
	})
	if err := t.follow(ctx, topology.StreamChunks, jetstream.OrderedConsumerConfig{
		FilterSubjects: chunkSubjects, DeliverPolicy: jetstream.DeliverAllPolicy,
	}, t.onChunk); err != nil {
		return err
	}
	return t.follow(ctx, topology.StreamDLQ, jetstream.OrderedConsumerConfig{
		FilterSubjects: dlqSubjects, DeliverPolicy: jetstream.DeliverNewPolicy,
	}, t.onDeadLetter)
}

func (t *Tracker) follow(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig, f func([]byte)) error {
	c, err := t.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("track %s: %w", stream, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) { f(m.Data()) })
	if err != nil {
		return fmt.Errorf("track %s: %w", stream, err)
	}
	t.cancels = append(t.cancels, cc.Stop)
	return nil
}

func (t *Tracker) onChunk(data []byte) {
	var ch wire.Chunk
	if wire.Decode(data, &ch) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, part := range ch.Parts {
		p := t.ids[part.SourceID]
		if p == nil {
			p = &parts{seen: map[int]bool{}, last: -1, chunks: map[string]bool{}}
			t.ids[part.SourceID] = p
		}
		if p.seen[part.Part] {
			continue
		}
		p.seen[part.Part] = true
		p.rows += int64(part.Rows)
		p.skipped += int64(part.Skipped)
		p.nulled += int64(part.Nulled)
		if len(p.skips) < maxSkips {
			p.skips = append(p.skips, part.Skips[:min(len(part.Skips), maxSkips-len(p.skips))]...)
		}
		if !ch.CreatedAt.Before(t.start) {
			p.fresh = true
		}
		if part.Rows > 0 {
			p.chunks[fmt.Sprintf("%s/%d", ch.Dataset, ch.Seq)] = true
		}
		if part.Last {
			p.last = part.Part
		}
		if p.complete() {
			for _, w := range t.waiting[part.SourceID] {
				t.settle(w, p)
			}
			delete(t.waiting, part.SourceID)
		}
	}
}

// onOutcome learns the id a tracked source's records go under in this run:
// its own, or that of the first source to deliver the same body. The
// source is done once that id's parts are all committed — in this run, or
// in an earlier one when the body is unchanged. Every tracked source is
// fetched in this run (its publish is scoped to the run), so every one
// gets an outcome or a dead letter.
func (t *Tracker) onOutcome(key string, value []byte) {
	var o fetch.Outcome
	if json.Unmarshal(value, &o) != nil || o.RecordsAs == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.sources[t.byKey[key]]
	if p == nil || p.Done || p.recordsAs != "" {
		return
	}
	p.recordsAs = o.RecordsAs
	if dl, ok := t.dead[o.RecordsAs]; ok {
		t.fail(p, dl)
		return
	}
	if parts := t.ids[o.RecordsAs]; parts != nil && parts.complete() {
		t.settle(p, parts)
		return
	}
	t.waiting[o.RecordsAs] = append(t.waiting[o.RecordsAs], p)
}

// settle finishes p, whose records went under an id that is now complete.
// Callers hold t.mu.
func (t *Tracker) settle(p *progress, ps *parts) {
	if p.Done {
		return
	}
	if p.recordsAs != p.ID && t.sources[p.recordsAs] != nil {
		// Another source of this run delivered the same body: its records
		// count there, once.
		p.Existing = true
		t.finish(p)
		return
	}
	p.Records, p.Skipped, p.Nulled, p.Skips = ps.rows, ps.skipped, ps.nulled, ps.skips
	for c := range ps.chunks {
		t.chunks[c] = true
	}
	p.Existing = !ps.fresh
	t.finish(p)
}

func (t *Tracker) onDeadLetter(data []byte) {
	var dl wire.DeadLetter
	if wire.Decode(data, &dl) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// A source failing in fetch is named by its own id; after fetch, by
	// the id its records go under.
	if p := t.sources[dl.SourceID]; p != nil && (p.recordsAs == "" || p.recordsAs == dl.SourceID) {
		t.fail(p, dl)
	}
	if dl.Stage != topology.ConsumerFetch {
		t.dead[dl.SourceID] = dl
		for _, w := range t.waiting[dl.SourceID] {
			t.fail(w, dl)
		}
		delete(t.waiting, dl.SourceID)
	}
}

// fail finishes p as dead-lettered. Callers hold t.mu.
func (t *Tracker) fail(p *progress, dl wire.DeadLetter) {
	if p.Done {
		return
	}
	p.Failed, p.Stage, p.Reason, p.Attempts = true, dl.Stage, dl.Error, dl.Attempts
	t.finish(p)
}

// finish marks p done. Callers hold t.mu.
func (t *Tracker) finish(p *progress) {
	p.Done = true
	t.left--
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Fail marks a source failed before it reached the pipeline (it could not
// be published, say).
func (t *Tracker) Fail(id, stage, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.sources[id]; p != nil && !p.Done {
		p.Failed, p.Stage, p.Reason = true, stage, reason
		t.finish(p)
	}
}

// Progress returns how many sources are done and how many records are
// committed: those of the sources done, and those committed so far in this
// run of sources still going (a large source shows its progress).
func (t *Tracker) Progress() (done, total int, records int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.sources {
		if p.Done {
			records += p.Records
			continue
		}
		id := p.ID
		if p.recordsAs != "" {
			id = p.recordsAs
		}
		if ps := t.ids[id]; ps != nil && ps.fresh {
			records += ps.rows
		}
	}
	return len(t.sources) - t.left, len(t.sources), records
}

// Wait blocks until every source is done or ctx ends, stops following and
// returns the summary so far.
func (t *Tracker) Wait(ctx context.Context) (Summary, error) {
	defer func() {
		for _, stop := range t.cancels {
			stop()
		}
		t.watches.Wait()
	}()
	for {
		t.mu.Lock()
		left := t.left
		t.mu.Unlock()
		if left == 0 {
			return t.Summary(), nil
		}
		select {
		case <-ctx.Done():
			return t.Summary(), ctx.Err()
		case <-t.changed:
		}
	}
}

// Summary returns the outcomes so far.
func (t *Tracker) Summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{Sources: len(t.order), Chunks: len(t.chunks), Elapsed: time.Since(t.start)}
	var ok []Outcome
	for _, id := range t.order {
		p := t.sources[id]
		s.Records += p.Records
		s.Skipped += p.Skipped
		s.Nulled += p.Nulled
		switch {
		case p.Failed:
			s.Failed++
			s.Outcomes = append(s.Outcomes, p.Outcome)
		case p.Done:
			s.OK++
			if p.Existing {
				s.Existing++
			}
			ok = append(ok, p.Outcome)
		default:
			ok = append(ok, p.Outcome)
		}
	}
	s.Outcomes = append(s.Outcomes, ok...)
	return s
}
