package transform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// maxPayload is the largest record batch message transform publishes.
const maxPayload = 1 << 20

// parsedAhead is how many parsed batches may wait for the publisher.
const parsedAhead = 2

// errParseFailed stops the publisher when the parse failed.
var errParseFailed = errors.New("parse failed")

// Handler is the transform stage's handler: one fetched body in, its record
// batches out.
type Handler struct {
	js     jetstream.JetStream
	bodies jetstream.ObjectStore
	cfg    Config
	progs  map[string]*spec.Program

	streamMu   sync.Mutex
	bodyStream jetstream.Stream // the bodies bucket's stream, looked up once
}

// New returns a transform handler reading bodies from the object store. It
// checks cfg, the specs included.
func New(js jetstream.JetStream, bodies jetstream.ObjectStore, cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progs, err := cfg.programs()
	if err != nil {
		return nil, err
	}
	return &Handler{js: js, bodies: bodies, cfg: cfg, progs: progs}, nil
}

// program returns the compiled spec of dataset, or nil.
func (h *Handler) program(dataset string) *spec.Program {
	if p, ok := h.progs[dataset]; ok {
		return p
	}
	return h.progs["*"]
}

// Handle parses the body a wire.Fetched names, runs the dataset's spec on
// each batch and publishes the batches with Nats-Msg-Id
// wire.RecordsMsgID ("records/<dataset>/<source id>/<part>"), so a redelivered body publishes no
// duplicates. Parsing and publishing overlap: one goroutine parses while
// another transforms, encodes and publishes. Malformed rows are skipped and
// logged, unless Config.Strict; a malformed body, a decompression bomb and a
// spec that does not fit the data fail the source permanently.
func (h *Handler) Handle(ctx context.Context, m *runner.Msg) error {
	var f wire.Fetched
	if err := wire.Decode(m.Data, &f); err != nil {
		return runner.Permanent(fmt.Errorf("malformed fetched message: %w", err))
	}
	if f.Dataset == "" {
		f.Dataset = m.Dataset
	}
	// A records path says the body is a JSON document, whatever its URL or
	// content type suggest.
	format := f.Format
	if f.Records == "" {
		format = parse.DetectFormat(f.Format, f.URL, f.ContentType)
	}
	opts := parse.ParseOptions{
		Format:                format,
		Records:               f.Records,
		MaxBatchBytes:         h.cfg.MaxBatchBytes,
		MaxBatchRows:          h.cfg.MaxBatchRows,
		Strict:                h.cfg.Strict,
		MaxDecompressedBytes:  h.cfg.MaxDecompressedBytes,
		MaxDecompressionRatio: h.cfg.MaxDecompressionRatio,
	}
	obj, err := h.openBody(ctx, f.Object)
	if err != nil {
		return h.openError(&f, m.Delivered, err)
	}
	// A compressed body is decompressed once to check its limits before
	// any of its records is published: a bomb leaves nothing behind.
	var body io.Reader = bufio.NewReaderSize(obj, parse.ReadBufSize)
	if magic, _ := body.(*bufio.Reader).Peek(4); parse.IsCompressed(magic) {
		err := parse.CheckDecompression(ctx, body, opts)
		obj.Close()
		if err != nil {
			return classify(&f, err)
		}
		if obj, err = h.openBody(ctx, f.Object); err != nil {
			return h.openError(&f, m.Delivered, err)
		}
		body = obj
	}
	defer obj.Close()

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &publisher{
		h: h, f: &f, cancel: cancel,
		log: h.cfg.Logger.With("dataset", f.Dataset, "source", f.SourceID, "url", f.URL),
	}
	if prog := h.program(f.Dataset); prog != nil {
		p.run = prog.NewRun(pctx)
	}
	batches := make(chan *parse.Batch, parsedAhead)
	published := make(chan error, 1)
	go func() { published <- p.publishAll(pctx, batches) }()

	_, perr := parse.Parse(pctx, body, opts, func(b *parse.Batch) error {
		select {
		case batches <- b:
			return nil
		case <-pctx.Done():
			return context.Cause(pctx)
		}
	})
	if perr != nil {
		cancel(errParseFailed)
	}
	close(batches)
	pubErr := <-published

	err = perr
	if pubErr != nil && !errors.Is(pubErr, errParseFailed) {
		err = pubErr // the publisher stopped the parse
	}
	if err == nil {
		p.logSummary()
		return nil
	}
	return classify(&f, err)
}

// missingBodyAttempts is how many deliveries a missing body is retried
// before it is taken as gone: on a replicated store a follower that has not
// caught up yet may answer the first reads.
const missingBodyAttempts = 3

// openError is the error of a body that can not be opened.
func (h *Handler) openError(f *wire.Fetched, delivered uint64, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		err := fmt.Errorf("transform %s: body %s is not stored", f.URL, f.Object)
		if delivered < missingBodyAttempts {
			return err
		}
		return runner.Permanent(fmt.Errorf("%w (after %d attempts)", err, delivered))
	}
	return fmt.Errorf("transform %s: open body: %w", f.URL, err)
}

// classify marks the errors no retry can fix as permanent: malformed input,
// a spec that does not fit the data, a corrupt body.
func classify(f *wire.Fetched, err error) error {
	var (
		parseErr *parse.ParseError
		stepErr  *spec.StepError
	)
	if errors.As(err, &parseErr) || errors.As(err, &stepErr) || errors.Is(err, errTooLarge) || errors.Is(err, ErrTooManyBadRows) || errors.Is(err, errBodyDigest) {
		return runner.Permanent(fmt.Errorf("transform %s: %w", f.URL, err))
	}
	return fmt.Errorf("transform %s: %w", f.URL, err)
}

// ErrTooManyBadRows marks a source that skipped more malformed rows than
// Config.MaxBadRows allows.
var ErrTooManyBadRows = errors.New("too many malformed rows")

// errTooLarge marks a row too large for one message.
var errTooLarge = errors.New("over the message size limit")

// publisher transforms, encodes and publishes the batches of one source.
type publisher struct {
	h      *Handler
	f      *wire.Fetched
	run    *spec.Run // nil without a spec
	cancel context.CancelCauseFunc
	log    *slog.Logger

	part    int
	acks    []pendingPublish
	skipped []wire.SkippedRow // not yet published
	unsent  int               // rows skipped, not yet published
	skips   int               // rows skipped in all
	listed  int               // skipped rows listed in all
	read    int               // rows the parser read in all, skipped ones included
	// firstSkip names the source's first skipped row and why.
	firstSkip string
	// hint is the records path the body's one document suggests, if any.
	hint string
}

// publishAll publishes the batches from in until it closes, then waits for
// their acknowledgements. On an error it cancels the parse.
func (p *publisher) publishAll(ctx context.Context, in <-chan *parse.Batch) error {
	err := p.consume(ctx, in)
	for _, a := range p.acks {
		if err != nil {
			break
		}
		err = p.await(ctx, a)
	}
	if err != nil {
		p.cancel(err)
	}
	return err
}

func (p *publisher) consume(ctx context.Context, in <-chan *parse.Batch) error {
	for b := range in {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		p.noteSkips(b)
		if err := p.checkBadRows(b.Last); err != nil {
			return err
		}
		if p.part == 0 && b.Last && p.f.Records == "" {
			if path := parse.RecordsHint(b); path != "" {
				p.hint = path
				p.log.Warn("the body is one JSON document read as one record; to read the array of objects in it as records, give the source a records path",
					"records", path)
			}
		}
		if p.run != nil {
			var err error
			if b, err = p.run.Apply(b); err != nil {
				return err
			}
		}
		if b.Rows == 0 && !b.Last {
			continue // its skipped rows go with the next batch
		}
		if err := p.publish(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// noteSkips logs the skipped rows b lists and keeps them for the next
// batch published.
func (p *publisher) noteSkips(b *parse.Batch) {
	p.skips += b.SkippedRows
	p.unsent += b.SkippedRows
	p.read += b.Rows + b.SkippedRows
	for _, s := range b.Skipped {
		p.log.Warn("skipped malformed row", "line", s.Line, "reason", s.Reason)
	}
	if p.listed == 0 && len(b.Skipped) > 0 {
		p.firstSkip = fmt.Sprintf("line %d: %s", b.Skipped[0].Line, b.Skipped[0].Reason)
	}
	p.listed += len(b.Skipped)
	p.skipped = append(p.skipped, b.Skipped...)
}

// checkBadRows fails the source once it skipped more rows than
// Config.MaxBadRows allows: a count as soon as it is passed, a fraction of
// the rows read at the source's end.
func (p *publisher) checkBadRows(last bool) error {
	limit := p.h.cfg.MaxBadRows
	over := limit.Count > 0 && p.skips > limit.Count
	if last && limit.Fraction > 0 && p.read > 0 {
		over = over || float64(p.skips) > limit.Fraction*float64(p.read)
	}
	if !over {
		return nil
	}
	first := ""
	if p.firstSkip != "" {
		first = "; first: " + p.firstSkip
	}
	return fmt.Errorf("%w: %d of %d rows read so far were malformed and skipped, more than the limit of %s%s",
		ErrTooManyBadRows, p.skips, p.read, limit, first)
}

// logSummary logs how many rows the source skipped, when the warnings did
// not name them all.
func (p *publisher) logSummary() {
	if p.skips > p.listed {
		p.log.Warn("skipped malformed rows", "rows", p.skips, "listed", p.listed)
	}
}

// publish encodes b and publishes it, in as many parts as the message size
// limit needs.
func (p *publisher) publish(ctx context.Context, b *parse.Batch) error {
	rb := &wire.RecordBatch{
		SourceID: p.f.SourceID, Dataset: p.f.Dataset, URL: p.f.URL, Part: p.part, Last: b.Last,
		Rows: b.Rows, Columns: b.Columns, Skipped: p.skipped, SkippedRows: p.unsent, At: time.Now().UTC(),
		PublishedAt: p.f.PublishedAt,
	}
	rb.SchemaFP = chunk.Fingerprint(chunk.SchemaOf(rb))
	data, err := wire.Encode(rb)
	if err != nil {
		return err
	}
	if len(data) > maxPayload {
		if b.Rows <= 1 {
			err := fmt.Errorf("the record on line %d takes %d bytes: %w of %d bytes", b.FirstLine, len(data), errTooLarge, maxPayload)
			if p.hint != "" {
				err = fmt.Errorf("%w; the body is one JSON document read as one record: to read the array of objects in it as records, give the source a records path: records=%s", err, p.hint)
			}
			return err
		}
		lo, hi := split(b)
		if err := p.publish(ctx, lo); err != nil {
			return err
		}
		return p.publish(ctx, hi)
	}
	sent, err := runner.PublishAsync(p.h.js, topology.Subject(topology.SubjectRecords, p.f.Dataset), data,
		wire.RecordsMsgID(p.f.Dataset, p.f.SourceID, p.part))
	if err != nil {
		return fmt.Errorf("part %d: %w", p.part, err)
	}
	pp := pendingPublish{Pending: sent, part: p.part}
	p.part++
	p.skipped, p.unsent = nil, 0
	p.acks = append(p.acks, pp)
	if len(p.acks) >= p.h.cfg.Publishing {
		if err := p.await(ctx, p.acks[0]); err != nil {
			return err
		}
		p.acks = p.acks[1:]
	}
	return nil
}

// pendingPublish is a record batch published and not yet acknowledged.
type pendingPublish struct {
	*runner.Pending
	part int
}

// await waits for pp's acknowledgement. When the records stream is full it
// publishes the batch again after a while, until combine has made room or
// ctx ends: the source holds its place (the runner keeps its message in
// progress) instead of failing and being parsed again from the start.
func (p *publisher) await(ctx context.Context, pp pendingPublish) error {
	if err := pp.Wait(ctx, func(error) { p.log.Warn("records stream full, waiting for room", "part", pp.part) }); err != nil {
		return fmt.Errorf("part %d: %w", pp.part, err)
	}
	return nil
}

// split cuts b in two halves of its rows; only the second keeps Last.
func split(b *parse.Batch) (*parse.Batch, *parse.Batch) {
	mid := b.Rows / 2
	lo := &parse.Batch{Rows: mid, FirstLine: b.FirstLine, LastLine: b.LastLine, Columns: make([]wire.Column, len(b.Columns))}
	hi := &parse.Batch{Rows: b.Rows - mid, FirstLine: b.FirstLine, LastLine: b.LastLine, Last: b.Last, Columns: make([]wire.Column, len(b.Columns))}
	for i := range b.Columns {
		lo.Columns[i] = sliceColumn(&b.Columns[i], 0, mid)
		hi.Columns[i] = sliceColumn(&b.Columns[i], mid, b.Rows)
	}
	return lo, hi
}

// sliceColumn returns rows lo to hi of c.
func sliceColumn(c *wire.Column, lo, hi int) wire.Column {
	out := wire.Column{Name: c.Name, Type: c.Type}
	switch c.Type {
	case wire.TypeInt, wire.TypeTimestamp:
		out.Ints = c.Ints[lo:hi]
	case wire.TypeFloat:
		out.Floats = c.Floats[lo:hi]
	case wire.TypeBool:
		out.Bools = c.Bools[lo:hi]
	default:
		out.Strings = c.Strings[lo:hi]
	}
	if c.Nulls != nil {
		out.Nulls = c.Nulls[lo:hi]
		hasNull := false
		for _, n := range out.Nulls {
			hasNull = hasNull || n
		}
		if !hasNull {
			out.Nulls = nil
		}
	}
	return out
}

// Annotate adds the source's id and URL to a dead letter.
func (h *Handler) Annotate(m *runner.Msg, dl *wire.DeadLetter) {
	var f wire.Fetched
	if wire.Decode(m.Data, &f) == nil {
		dl.SourceID, dl.URL = f.SourceID, f.URL
	}
}
