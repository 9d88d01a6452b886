// Package dlq reads, replays and purges trainfeed's dead letters: the
// messages a stage gave up on, kept in the TRAINFEED_DLQ stream under
// trainfeed.dlq.<stage>.<dataset> with the original subject, payload,
// headers, attempts and last error. An entry's id is its DLQ stream
// sequence.
//
// Replaying republishes the original payload and headers to the original
// subject, then deletes the entry. That never duplicates records: a
// replayed source or Fetched message leads to record batches under the same
// source id and part numbers, which the combine ledger adds at most once.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// ErrNotFound is returned for an id that names no dead letter.
var ErrNotFound = errors.New("no such dead letter")

// ErrFull is returned, wrapped, when a replay found the stream it publishes
// into full; the entries not replayed stay in the DLQ.
var ErrFull = errors.New("pipeline full, retry later")

// Entry is one dead letter.
type Entry struct {
	// Seq is the entry's id: its sequence in the DLQ stream.
	Seq uint64 `json:"id"`
	// Time is when the entry was stored.
	Time time.Time `json:"time"`
	wire.DeadLetter
	// Invalid says why the message is not a readable dead letter; then only
	// Seq, Time, Stage and Dataset (from its subject) are set.
	Invalid string `json:"invalid,omitempty"`
}

// Filter selects dead letters by stage and dataset; an empty field matches all.
type Filter struct {
	Stage, Dataset string
}

// Validate reports a stage or dataset that can never match.
func (f Filter) Validate() error {
	switch f.Stage {
	case "", topology.ConsumerFetch, topology.ConsumerTransform, topology.ConsumerCombine:
	default:
		return fmt.Errorf("stage %q: want fetch, transform or combine", f.Stage)
	}
	if f.Dataset != "" && !wire.ValidDataset(f.Dataset) {
		return fmt.Errorf("dataset %q: use 1-64 letters, digits, '_' or '-'", f.Dataset)
	}
	return nil
}

// Subject returns the DLQ subject filter f stands for.
func (f Filter) Subject() string {
	if f.Stage == "" && f.Dataset == "" {
		return topology.SubjectDLQ + ".>"
	}
	stage, dataset := f.Stage, f.Dataset
	if stage == "" {
		stage = "*"
	}
	if dataset == "" {
		dataset = "*"
	}
	return topology.DLQSubject(stage, dataset)
}

// Queue is the DLQ stream.
type Queue struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open returns the DLQ of the trainfeed pipeline js talks to.
func Open(ctx context.Context, js jetstream.JetStream) (*Queue, error) {
	s, err := js.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("open dlq: stream %s not found (has a trainfeed pipeline run on this NATS?)", topology.StreamDLQ)
		}
		return nil, fmt.Errorf("open dlq: %w", err)
	}
	return &Queue{js: js, stream: s}, nil
}

// Count returns how many dead letters f matches.
func (q *Queue) Count(ctx context.Context, f Filter) (uint64, error) {
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(f.Subject()))
	if err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// List returns the dead letters f matches, oldest first; at most limit of
// them when limit > 0.
func (q *Queue) List(ctx context.Context, f Filter, limit int) ([]Entry, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var out []Entry
	subject := f.Subject()
	for seq := uint64(1); limit <= 0 || len(out) < limit; {
		raw, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("list dead letters: %w", err)
		}
		out = append(out, decode(raw))
		seq = raw.Sequence + 1
	}
	return out, nil
}

// Get returns the dead letter with id seq.
func (q *Queue) Get(ctx context.Context, seq uint64) (*Entry, error) {
	raw, err := q.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	e := decode(raw)
	return &e, nil
}

func decode(raw *jetstream.RawStreamMsg) Entry {
	e := Entry{Seq: raw.Sequence, Time: raw.Time}
	if err := wire.Decode(raw.Data, &e.DeadLetter); err != nil {
		e.DeadLetter = wire.DeadLetter{}
		e.Invalid = err.Error()
	}
	if rest, ok := strings.CutPrefix(raw.Subject, topology.SubjectDLQ+"."); ok {
		stage, dataset, _ := strings.Cut(rest, ".")
		if e.Stage == "" {
			e.Stage = stage
		}
		if e.Dataset == "" {
			e.Dataset = dataset
		}
	}
	if e.Invalid == "" && e.Subject == "" {
		e.Invalid = "dead letter names no original subject"
	}
	return e
}

// replayable reports whether subject is a stage's input, the only place a
// replay may publish to.
func replayable(subject string) bool {
	for _, p := range []string{topology.SubjectSources, topology.SubjectFetched, topology.SubjectRecords} {
		if rest, ok := strings.CutPrefix(subject, p+"."); ok && wire.ValidDataset(rest) {
			return true
		}
	}
	return false
}

// Replay republishes each entry's payload and headers to its original
// subject (with a fresh Nats-Msg-Id: the original one would be dropped as a
// duplicate inside the stream's window), waits for JetStream to store it,
// then deletes the entry. It stops at the first failure and returns the ids
// replayed so far; when the target stream is full the error wraps ErrFull.
func (q *Queue) Replay(ctx context.Context, entries []Entry) ([]uint64, error) {
	var done []uint64
	for _, e := range entries {
		if e.Invalid != "" {
			return done, fmt.Errorf("replay %d: %s", e.Seq, e.Invalid)
		}
		if !replayable(e.Subject) {
			return done, fmt.Errorf("replay %d: subject %q is not a trainfeed stage input", e.Seq, e.Subject)
		}
		if len(e.Data) == 0 && e.DataOmitted > 0 {
			return done, fmt.Errorf("replay %d: its %d-byte message was too large to keep in the dead letter: rebuild its source instead (trainfeed rebuild)", e.Seq, e.DataOmitted)
		}
		m := nats.NewMsg(e.Subject)
		m.Data = e.Data
		for k, vs := range e.Headers {
			if strings.HasPrefix(strings.ToLower(k), "nats-") {
				continue // Msg-Id, expectations, TTLs: they were for the first publish
			}
			for _, v := range vs {
				m.Header.Add(k, v)
			}
		}
		m.Header.Set(jetstream.MsgIDHeader, wire.ReplayMsgID(e.Seq))
		if _, err := q.js.PublishMsg(ctx, m); err != nil {
			if topology.IsFull(err) {
				return done, fmt.Errorf("replay %d to %s: %w: %w", e.Seq, e.Subject, ErrFull, err)
			}
			return done, fmt.Errorf("replay %d to %s: %w", e.Seq, e.Subject, err)
		}
		if err := q.stream.DeleteMsg(ctx, e.Seq); err != nil && !noMessage(err) {
			return done, fmt.Errorf("replay %d: republished, but not removed from the dlq: %w", e.Seq, err)
		}
		done = append(done, e.Seq)
	}
	return done, nil
}

// Delete removes the dead letters with the given ids.
func (q *Queue) Delete(ctx context.Context, seqs []uint64) error {
	for _, seq := range seqs {
		if err := q.stream.DeleteMsg(ctx, seq); err != nil {
			if noMessage(err) {
				return fmt.Errorf("delete dead letter %d: %w", seq, ErrNotFound)
			}
			return fmt.Errorf("delete dead letter %d: %w", seq, err)
		}
	}
	return nil
}

// noMessage reports the error of deleting a message that is not there.
// nats.go reports the server's reason (error 10057) only as text.
func noMessage(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		(errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(err.Error(), "no message found"))
}

// Purge removes every dead letter f matches and returns how many there were.
func (q *Queue) Purge(ctx context.Context, f Filter) (uint64, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	n, err := q.Count(ctx, f)
	if err != nil {
		return 0, err
	}
	var opts []jetstream.StreamPurgeOpt
	if f.Stage != "" || f.Dataset != "" {
		opts = append(opts, jetstream.WithPurgeSubject(f.Subject()))
	}
	if err := q.stream.Purge(ctx, opts...); err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	return n, nil
}
