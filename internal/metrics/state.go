package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Stages lists trainfeed's stages in pipeline order.
var Stages = []string{topology.ConsumerFetch, topology.ConsumerTransform, topology.ConsumerCombine}

// streamOf is the stream each stage consumes.
var streamOf = map[string]string{
	topology.ConsumerFetch:     topology.StreamSources,
	topology.ConsumerTransform: topology.StreamFetched,
	topology.ConsumerCombine:   topology.StreamRecords,
}

// StageState is one stage consumer as JetStream sees it: the whole consumer
// group, every process that pulls from it.
type StageState struct {
	Stage  string `json:"stage"`
	Stream string `json:"stream"`
	// Missing is true when the consumer does not exist (yet).
	Missing bool `json:"missing,omitempty"`
	// Pending counts messages not delivered yet.
	Pending uint64 `json:"pending"`
	// AckPending counts messages delivered and not acknowledged: the work
	// in flight, at most Window.
	AckPending int `json:"ack_pending"`
	Window     int `json:"window"`
	// Redelivered counts unacknowledged messages delivered more than once.
	Redelivered int `json:"redelivered"`
	// Delivered is the consumer's delivery sequence: deliveries so far,
	// redeliveries included.
	Delivered uint64 `json:"delivered"`
	// Waiting counts the pull requests members have open.
	Waiting int `json:"waiting"`
	// DLQ counts this stage's dead letters, all datasets.
	DLQ uint64 `json:"dlq"`
}

// StreamState is one stream's size.
type StreamState struct {
	Stream   string `json:"stream"`
	Missing  bool   `json:"missing,omitempty"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// MaxMessages and MaxBytes are the stream's limits; -1: none.
	MaxMessages int64 `json:"max_messages"`
	MaxBytes    int64 `json:"max_bytes"`
}

// DLQCount is the number of dead letters of one stage and dataset.
type DLQCount struct {
	Stage    string `json:"stage"`
	Dataset  string `json:"dataset"`
	Messages uint64 `json:"messages"`
}

// DatasetState is a dataset's last committed chunk, as its chunk event
// says: how fresh what trainers got is.
type DatasetState struct {
	Dataset   string    `json:"dataset"`
	LastSeq   uint64    `json:"last_seq"`
	Committed time.Time `json:"committed_at"`
	// Freshness50 and FreshnessMax are the median and the largest time from
	// the publish of a source of the chunk to its commit; zero when its
	// parts do not say when they were published.
	Freshness50  time.Duration `json:"freshness_p50_ns,omitempty"`
	FreshnessMax time.Duration `json:"freshness_max_ns,omitempty"`
}

// State is a snapshot of the pipeline's JetStream side.
type State struct {
	At       time.Time      `json:"at"`
	Stages   []StageState   `json:"stages"`
	Streams  []StreamState  `json:"streams"`
	DLQ      []DLQCount     `json:"dlq"`
	Datasets []DatasetState `json:"datasets,omitempty"`
}

// ReadState reads every stage consumer and stream, and counts dead letters
// by stage and dataset. A consumer or stream that does not exist is marked
// Missing; other errors are returned.
func ReadState(ctx context.Context, js jetstream.JetStream) (*State, error) {
	st := &State{At: time.Now()}
	dlqByStage := map[string]uint64{}
	for _, name := range []string{topology.StreamSources, topology.StreamFetched, topology.StreamRecords, topology.StreamChunks, topology.StreamDLQ} {
		ss := StreamState{Stream: name}
		var opts []jetstream.StreamInfoOpt
		switch name {
		case topology.StreamDLQ:
			opts = append(opts, jetstream.WithSubjectFilter(topology.SubjectDLQ+".>"))
		case topology.StreamChunks:
			opts = append(opts, jetstream.WithSubjectFilter(topology.SubjectChunks+".*"))
		}
		s, err := js.Stream(ctx, name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx, opts...)
		}
		switch {
		case isNotFound(err):
			ss.Missing = true
		case err != nil:
			return nil, fmt.Errorf("read stream %s: %w", name, err)
		default:
			ss.Messages, ss.Bytes = info.State.Msgs, info.State.Bytes
			ss.MaxMessages, ss.MaxBytes = info.Config.MaxMsgs, info.Config.MaxBytes
			if name == topology.StreamChunks {
				if st.Datasets, err = lastChunks(ctx, s, info); err != nil {
					return nil, err
				}
			}
			if name == topology.StreamDLQ {
				for subj, n := range info.State.Subjects {
					stage, dataset, ok := splitDLQSubject(subj)
					if !ok {
						continue
					}
					st.DLQ = append(st.DLQ, DLQCount{Stage: stage, Dataset: dataset, Messages: n})
					dlqByStage[stage] += n
				}
			}
		}
		st.Streams = append(st.Streams, ss)
	}
	sort.Slice(st.DLQ, func(i, j int) bool {
		if st.DLQ[i].Stage != st.DLQ[j].Stage {
			return st.DLQ[i].Stage < st.DLQ[j].Stage
		}
		return st.DLQ[i].Dataset < st.DLQ[j].Dataset
	})
	for _, stage := range Stages {
		cs := StageState{Stage: stage, Stream: streamOf[stage], DLQ: dlqByStage[stage]}
		c, err := js.Consumer(ctx, cs.Stream, stage)
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(ctx)
		}
		switch {
		case isNotFound(err):
			cs.Missing = true
		case err != nil:
			return nil, fmt.Errorf("read consumer %s: %w", stage, err)
		default:
			cs.Pending, cs.AckPending, cs.Window = info.NumPending, info.NumAckPending, info.Config.MaxAckPending
			cs.Redelivered, cs.Delivered, cs.Waiting = info.NumRedelivered, info.Delivered.Consumer, info.NumWaiting
		}
		st.Stages = append(st.Stages, cs)
	}
	return st, nil
}

// lastChunks reads the last chunk event of every dataset of the chunks
// stream s, whose info lists its subjects.
func lastChunks(ctx context.Context, s jetstream.Stream, info *jetstream.StreamInfo) ([]DatasetState, error) {
	var out []DatasetState
	for subj := range info.State.Subjects {
		msg, err := s.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the last chunk event of %s: %w", subj, err)
		}
		var ch wire.Chunk
		if wire.Decode(msg.Data, &ch) != nil {
			continue
		}
		ds := DatasetState{Dataset: ch.Dataset, LastSeq: ch.Seq, Committed: ch.CreatedAt}
		var waits []time.Duration
		for _, p := range ch.Parts {
			if !p.PublishedAt.IsZero() {
				waits = append(waits, ch.CreatedAt.Sub(p.PublishedAt))
			}
		}
		if len(waits) > 0 {
			slices.Sort(waits)
			ds.Freshness50, ds.FreshnessMax = waits[len(waits)/2], waits[len(waits)-1]
		}
		out = append(out, ds)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dataset < out[j].Dataset })
	return out, nil
}

// Stage returns the state of stage, or nil.
func (s *State) Stage(stage string) *StageState {
	for i := range s.Stages {
		if s.Stages[i].Stage == stage {
			return &s.Stages[i]
		}
	}
	return nil
}

// splitDLQSubject reads "trainfeed.dlq.<stage>.<dataset>".
func splitDLQSubject(subject string) (stage, dataset string, ok bool) {
	rest, ok := strings.CutPrefix(subject, topology.SubjectDLQ+".")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ".")
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound)
}
