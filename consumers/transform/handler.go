package transform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Config shapes the transform stage.
type Config struct {
	// MaxBatchBytes bounds the raw value bytes of one record batch, so its
	// message stays well under the 1 MiB payload limit. Default 256 KiB.
	MaxBatchBytes int
	// MaxBatchRows bounds the records of one batch. Default 5,000.
	MaxBatchRows int
	// Publishing is how many batches of one source may await JetStream's
	// acknowledgement while parsing goes on. Default 4.
	Publishing int
}

// DefaultConfig returns the settings transform runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{MaxBatchBytes: 256 << 10, MaxBatchRows: 5000, Publishing: 4}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.MaxBatchBytes < 1 || c.MaxBatchBytes > 768<<10 {
		return fmt.Errorf("transform: max batch bytes %d must be between 1 and 768 KiB", c.MaxBatchBytes)
	}
	if c.MaxBatchRows < 1 {
		return fmt.Errorf("transform: max batch rows %d must be positive", c.MaxBatchRows)
	}
	if c.Publishing < 1 {
		return fmt.Errorf("transform: publishing %d must be positive", c.Publishing)
	}
	return nil
}

// maxPayload is the largest record batch message transform publishes.
const maxPayload = 1 << 20

// Handler is the transform stage's handler: one fetched body in, its record
// batches out.
type Handler struct {
	js     jetstream.JetStream
	bodies jetstream.ObjectStore
	cfg    Config
}

// New returns a transform handler reading bodies from the object store.
func New(js jetstream.JetStream, bodies jetstream.ObjectStore, cfg Config) (*Handler, error) {
	d := DefaultConfig()
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = d.MaxBatchBytes
	}
	if cfg.MaxBatchRows == 0 {
		cfg.MaxBatchRows = d.MaxBatchRows
	}
	if cfg.Publishing == 0 {
		cfg.Publishing = d.Publishing
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Handler{js: js, bodies: bodies, cfg: cfg}, nil
}

// Handle parses the body a wire.Fetched names and publishes its records as
// batches with Nats-Msg-Id "records/<source id>/<part>", so a redelivered
// body publishes no duplicates. A malformed body is a permanent failure.
func (h *Handler) Handle(ctx context.Context, m *runner.Msg) error {
	var f wire.Fetched
	if err := wire.Decode(m.Data, &f); err != nil {
		return runner.Permanent(fmt.Errorf("malformed fetched message: %w", err))
	}
	if f.Dataset == "" {
		f.Dataset = m.Dataset
	}
	obj, err := h.bodies.Get(ctx, f.Object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return runner.Permanent(fmt.Errorf("transform %s: body %s is no longer stored", f.URL, f.Object))
	}
	if err != nil {
		return fmt.Errorf("transform %s: open body: %w", f.URL, err)
	}
	defer obj.Close()

	subject := topology.Subject(topology.SubjectRecords, f.Dataset)
	var acks []jetstream.PubAckFuture
	part := 0
	opts := ParseOptions{
		Format:        DetectFormat(f.Format, f.URL, f.ContentType),
		MaxBatchBytes: h.cfg.MaxBatchBytes,
		MaxBatchRows:  h.cfg.MaxBatchRows,
	}
	_, err = Parse(ctx, obj, opts, func(b *Batch) error {
		rb := &wire.RecordBatch{
			SourceID: f.SourceID, Dataset: f.Dataset, URL: f.URL, Part: part, Last: b.Last,
			Rows: b.Rows, Columns: b.Columns, At: time.Now().UTC(),
		}
		rb.SchemaFP = chunk.Fingerprint(chunk.SchemaOf(rb))
		data, err := wire.Encode(rb)
		if err != nil {
			return err
		}
		if len(data) > maxPayload {
			return &ParseError{Line: b.FirstLine, Err: fmt.Errorf("records from line %d take %d bytes, over the %d byte message limit", b.FirstLine, len(data), maxPayload)}
		}
		ack, err := h.js.PublishAsync(subject, data, jetstream.WithMsgID(fmt.Sprintf("records/%s/%d", f.SourceID, part)))
		if err != nil {
			return fmt.Errorf("publish part %d: %w", part, err)
		}
		part++
		acks = append(acks, ack)
		if len(acks) >= h.cfg.Publishing {
			if err := waitAck(ctx, acks[0]); err != nil {
				return err
			}
			acks = acks[1:]
		}
		return nil
	})
	for _, a := range acks {
		if werr := waitAck(ctx, a); err == nil {
			err = werr
		}
	}
	if err != nil {
		var perr *ParseError
		if errors.As(err, &perr) {
			return runner.Permanent(fmt.Errorf("transform %s: %w", f.URL, err))
		}
		return fmt.Errorf("transform %s: %w", f.URL, err)
	}
	return nil
}

func waitAck(ctx context.Context, a jetstream.PubAckFuture) error {
	select {
	case <-a.Ok():
		return nil
	case err := <-a.Err():
		return fmt.Errorf("publish records: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Annotate adds the source's id and URL to a dead letter.
func (h *Handler) Annotate(m *runner.Msg, dl *wire.DeadLetter) {
	var f wire.Fetched
	if wire.Decode(m.Data, &f) == nil {
		dl.SourceID, dl.URL = f.SourceID, f.URL
	}
}
