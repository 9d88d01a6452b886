package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
}

type progress struct {
	Outcome
	parts map[int]bool
	last  int  // index of the last part, -1 while unknown
	fresh bool // some part was committed after tracking began
}

// Summary is the end state of a tracked set of sources.
type Summary struct {
	Sources, OK, Failed int
	// Existing counts sources that were in their dataset before this run.
	Existing int
	Records  int64
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
	chunks  map[string]bool // dataset/seq holding tracked records
	left    int
	changed chan struct{}
	cancels []func()
}

// NewTracker returns a tracker of sources. Start it before publishing them.
func NewTracker(js jetstream.JetStream, sources []Tracked) *Tracker {
	t := &Tracker{js: js, sources: map[string]*progress{}, chunks: map[string]bool{}, changed: make(chan struct{}, 1)}
	for _, s := range sources {
		if _, dup := t.sources[s.ID]; dup {
			continue
		}
		t.sources[s.ID] = &progress{Outcome: Outcome{Tracked: s}, parts: map[int]bool{}, last: -1}
		t.order = append(t.order, s.ID)
	}
	t.left = len(t.sources)
	return t
}

// Start subscribes to chunk events and dead letters.
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
		p := t.sources[part.SourceID]
		if p == nil || p.Done || p.parts[part.Part] {
			continue
		}
		p.parts[part.Part] = true
		p.Records += int64(part.Rows)
		if !ch.CreatedAt.Before(t.start) {
			p.fresh = true
		}
		if part.Rows > 0 {
			t.chunks[fmt.Sprintf("%s/%d", ch.Dataset, ch.Seq)] = true
		}
		if part.Last {
			p.last = part.Part
		}
		if p.last >= 0 && len(p.parts) == p.last+1 {
			t.finish(p)
		}
	}
}

func (t *Tracker) onDeadLetter(data []byte) {
	var dl wire.DeadLetter
	if wire.Decode(data, &dl) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.sources[dl.SourceID]
	if p == nil || p.Done {
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

// Progress returns how many sources are done and how many records they hold.
func (t *Tracker) Progress() (done, total int, records int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.sources {
		records += p.Records
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
		switch {
		case p.Failed:
			s.Failed++
			s.Outcomes = append(s.Outcomes, p.Outcome)
		case p.Done:
			s.OK++
			if !p.fresh {
				p.Existing = true
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
