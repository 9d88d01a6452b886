// Package rebuild re-runs a dataset from its sources: it reads the sources
// the TRAINFEED_SOURCES stream still holds for a dataset (limits retention,
// 7 days by default), from a stream sequence or a time on, and publishes
// each again, to the same dataset or into another one.
//
// Into the same dataset a rebuild is a refresh: every source is fetched
// again, a body that has not changed is recognised (the fetch stage gives it
// the source id it first went under, and the combine ledger already holds
// its parts) and adds nothing; a body that changed goes in as a new version
// of its source. Into a new dataset it is a full rebuild: its own folder,
// its own manifest keys, every record once.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// ErrFull is returned, wrapped, when the sources stream refuses more
// sources; Result.LastSeq says where to resume (--from-seq LastSeq+1).
var ErrFull = errors.New("pipeline full, retry later")

// Config says what to rebuild.
type Config struct {
	// Dataset whose sources are read. Required.
	Dataset string
	// Into is the dataset the sources are published to. Default: Dataset.
	Into string
	// FromSeq starts at this sources stream sequence; Since at the first
	// source stored at or after this time. Neither: every source the stream holds.
	FromSeq uint64
	Since   time.Time
	// DryRun reads and counts, and publishes nothing.
	DryRun bool
}

// Result counts what a rebuild did.
type Result struct {
	// Published counts the sources published again.
	Published int `json:"published"`
	// Skipped counts messages that are not readable sources (they were
	// dead-lettered when first fetched).
	Skipped int `json:"skipped"`
	// FirstSeq and LastSeq are the first and last stream sequences handled.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// Run publishes the dataset's sources again, in stream order, up to the last
// one stored when it began (so sources published meanwhile, its own
// included, are not read again).
func Run(ctx context.Context, js jetstream.JetStream, cfg Config) (Result, error) {
	var res Result
	if !wire.ValidDataset(cfg.Dataset) {
		return res, fmt.Errorf("rebuild: dataset %q: use 1-64 letters, digits, '_' or '-'", cfg.Dataset)
	}
	if cfg.Into == "" {
		cfg.Into = cfg.Dataset
	}
	if !wire.ValidDataset(cfg.Into) {
		return res, fmt.Errorf("rebuild: into %q: use 1-64 letters, digits, '_' or '-'", cfg.Into)
	}
	if cfg.FromSeq > 0 && !cfg.Since.IsZero() {
		return res, errors.New("rebuild: give a start sequence or a start time, not both")
	}
	subject := topology.Subject(topology.SubjectSources, cfg.Dataset)
	s, err := js.Stream(ctx, topology.StreamSources)
	if err != nil {
		return res, fmt.Errorf("rebuild: %s: %w", topology.StreamSources, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return res, fmt.Errorf("rebuild: %s: %w", topology.StreamSources, err)
	}
	if info.State.Subjects[subject] == 0 {
		return res, nil
	}
	last, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return res, fmt.Errorf("rebuild: last source of %s: %w", cfg.Dataset, err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case cfg.FromSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.FromSeq
	case !cfg.Since.IsZero():
		since := cfg.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return res, fmt.Errorf("rebuild: read sources: %w", err)
	}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return res, fmt.Errorf("rebuild: read sources: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return res, fmt.Errorf("rebuild: read sources: %w", err)
			}
			seq := md.Sequence.Stream
			if seq > last.Sequence {
				return res, nil
			}
			if err := publish(ctx, js, cfg, m, seq, &res); err != nil {
				return res, err
			}
			if res.FirstSeq == 0 {
				res.FirstSeq = seq
			}
			res.LastSeq = seq
			if seq == last.Sequence {
				return res, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return res, fmt.Errorf("rebuild: read sources: %w", err)
		}
		if n == 0 {
			return res, nil // nothing at or after the start
		}
	}
}

func publish(ctx context.Context, js jetstream.JetStream, cfg Config, m jetstream.Msg, seq uint64, res *Result) error {
	src, err := wire.DecodeSource(m.Data(), m.Headers().Get("Content-Type"))
	if err != nil {
		res.Skipped++
		return nil
	}
	if src.ID == "" {
		src.ID = "s" + strconv.FormatUint(seq, 10) // the id the fetch stage gave it
	}
	src.Dataset = cfg.Into
	src.PublishedAt = time.Now().UTC()
	if cfg.DryRun {
		res.Published++
		return nil
	}
	data, err := wire.Encode(&src)
	if err != nil {
		return fmt.Errorf("rebuild %d: %w", seq, err)
	}
	_, err = js.Publish(ctx, topology.Subject(topology.SubjectSources, cfg.Into), data, jetstream.WithMsgID(wire.RebuildMsgID(cfg.Into, seq)))
	if err != nil {
		if topology.IsFull(err) {
			return fmt.Errorf("rebuild %d: %w: %w", seq, ErrFull, err)
		}
		return fmt.Errorf("rebuild %d: %w", seq, err)
	}
	res.Published++
	return nil
}
