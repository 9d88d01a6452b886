package dlq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/dlq"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func setup(t *testing.T, cfg topology.Config) (jetstream.JetStream, *dlq.Queue) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	_, err := topology.Ensure(ctx, js, cfg)
	require.NoError(t, err)
	q, err := dlq.Open(ctx, js)
	require.NoError(t, err)
	return js, q
}

// deadLetter stores a dead letter as the runner does.
func deadLetter(t *testing.T, js jetstream.JetStream, dl wire.DeadLetter) {
	t.Helper()
	dl.At = time.Now().UTC()
	data, err := wire.Encode(&dl)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), topology.DLQSubject(dl.Stage, dl.Dataset), data)
	require.NoError(t, err)
}

func sourceLetter(t *testing.T, dataset, id string, json bool) wire.DeadLetter {
	t.Helper()
	src := wire.Source{ID: id, Dataset: dataset, URL: "https://example.com/" + id + ".csv"}
	data, err := wire.Encode(&src)
	require.NoError(t, err)
	hdr := nats.Header{"Nats-Msg-Id": {"source/" + id}, "Traceparent": {"00-abc-def-01"}}
	if json {
		data = fmt.Appendf(nil, `{"id": %q, "url": %q}`, id, src.URL)
		hdr.Set("Content-Type", "application/json")
	}
	return wire.DeadLetter{
		Stage: topology.ConsumerFetch, Dataset: dataset, Subject: topology.Subject(topology.SubjectSources, dataset),
		StreamSeq: 7, Data: data, Headers: hdr, Error: "GET " + src.URL + ": 404 Not Found", Attempts: 1,
		SourceID: id, URL: src.URL,
	}
}

func TestListShowFilter(t *testing.T) {
	js, q := setup(t, topology.DefaultConfig())
	ctx := context.Background()
	deadLetter(t, js, sourceLetter(t, "a", "s1", false))
	deadLetter(t, js, sourceLetter(t, "b", "s2", true))
	fetched, err := wire.Encode(&wire.Fetched{SourceID: "s3", Dataset: "a", URL: "https://example.com/s3.csv", Object: "sha256/00", Size: 12, Records: "data"})
	require.NoError(t, err)
	deadLetter(t, js, wire.DeadLetter{Stage: topology.ConsumerTransform, Dataset: "a", Subject: "trainfeed.fetched.a",
		Data: fetched, Error: "malformed CSV line 3", Attempts: 1, SourceID: "s3"})
	batch, err := wire.Encode(&wire.RecordBatch{SourceID: "s4", Dataset: "a", Part: 2, Rows: 1,
		Columns: []wire.Column{{Name: "id", Type: wire.TypeInt, Ints: []int64{1}}}})
	require.NoError(t, err)
	deadLetter(t, js, wire.DeadLetter{Stage: topology.ConsumerCombine, Dataset: "a", Subject: "trainfeed.records.a",
		Data: batch, Error: "gave up after 10 attempts: disk full", Attempts: 10})
	_, err = js.Publish(ctx, topology.DLQSubject("fetch", "a"), []byte("not a dead letter"))
	require.NoError(t, err)

	for _, tt := range []struct {
		f    dlq.Filter
		want []uint64
	}{
		{dlq.Filter{}, []uint64{1, 2, 3, 4, 5}},
		{dlq.Filter{Stage: "fetch"}, []uint64{1, 2, 5}},
		{dlq.Filter{Dataset: "a"}, []uint64{1, 3, 4, 5}},
		{dlq.Filter{Stage: "transform", Dataset: "a"}, []uint64{3}},
		{dlq.Filter{Stage: "combine", Dataset: "b"}, nil},
	} {
		got, err := q.List(ctx, tt.f, 0)
		require.NoError(t, err)
		var seqs []uint64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		require.Equal(t, tt.want, seqs, "%+v", tt.f)
		n, err := q.Count(ctx, tt.f)
		require.NoError(t, err)
		require.EqualValues(t, len(tt.want), n)
	}
	limited, err := q.List(ctx, dlq.Filter{}, 2)
	require.NoError(t, err)
	require.Len(t, limited, 2)
	_, err = q.List(ctx, dlq.Filter{Stage: "load"}, 0)
	require.ErrorContains(t, err, `stage "load"`)

	all, err := q.List(ctx, dlq.Filter{}, 0)
	require.NoError(t, err)
	require.Equal(t, "GET https://example.com/s1.csv: 404 Not Found", all[0].Error)
	require.Equal(t, "a", all[0].Dataset)
	require.Contains(t, all[4].Invalid, "decode")
	require.Equal(t, "fetch", all[4].Stage, "stage and dataset come from the subject")

	p, err := all[1].Payload()
	require.NoError(t, err)
	require.Equal(t, "s2", p.(wire.Source).ID, "a JSON source decodes")
	p, err = all[2].Payload()
	require.NoError(t, err)
	require.Equal(t, dlq.FetchedSummary{SourceID: "s3", Dataset: "a", URL: "https://example.com/s3.csv", Object: "sha256/00", Size: 12, Records: "data"}, p)
	p, err = all[3].Payload()
	require.NoError(t, err)
	require.Equal(t, []string{"id:int"}, p.(dlq.BatchSummary).Columns)
	require.Equal(t, 2, p.(dlq.BatchSummary).Part)

	e, err := q.Get(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, "malformed CSV line 3", e.Error)
	_, err = q.Get(ctx, 99)
	require.ErrorIs(t, err, dlq.ErrNotFound)
}

func TestReplay(t *testing.T) {
	js, q := setup(t, topology.DefaultConfig())
	ctx := context.Background()
	deadLetter(t, js, sourceLetter(t, "a", "s1", false))
	deadLetter(t, js, sourceLetter(t, "a", "s2", true))
	entries, err := q.List(ctx, dlq.Filter{}, 0)
	require.NoError(t, err)

	done, err := q.Replay(ctx, entries)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2}, done)
	n, err := q.Count(ctx, dlq.Filter{})
	require.NoError(t, err)
	require.Zero(t, n, "replayed entries leave the DLQ")

	s, err := js.Stream(ctx, topology.StreamSources)
	require.NoError(t, err)
	for i, e := range entries {
		m, err := s.GetMsg(ctx, uint64(i+1))
		require.NoError(t, err)
		require.Equal(t, "trainfeed.sources.a", m.Subject)
		require.Equal(t, e.Data, m.Data, "the original payload")
		require.Equal(t, wire.ReplayMsgID(e.Seq), m.Header.Get("Nats-Msg-Id"), "a fresh Nats-Msg-Id")
		require.Equal(t, "00-abc-def-01", m.Header.Get("Traceparent"), "other headers kept")
	}
	m, err := s.GetMsg(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, "application/json", m.Header.Get("Content-Type"))

	// Replaying the same entry twice within the window publishes it once.
	_, err = q.Replay(ctx, entries[:1])
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs)

	// Entries that cannot be replayed are refused, and stay.
	deadLetter(t, js, wire.DeadLetter{Stage: "fetch", Dataset: "a", Subject: "elsewhere.a", Data: []byte("x")})
	bad, err := q.List(ctx, dlq.Filter{}, 0)
	require.NoError(t, err)
	_, err = q.Replay(ctx, bad)
	require.ErrorContains(t, err, "not a trainfeed stage input")
	n, _ = q.Count(ctx, dlq.Filter{})
	require.EqualValues(t, 1, n)

	deadLetter(t, js, wire.DeadLetter{Stage: "combine", Dataset: "a", Subject: "trainfeed.records.a", DataOmitted: 3 << 20})
	bad, err = q.List(ctx, dlq.Filter{Stage: "combine"}, 0)
	require.NoError(t, err)
	_, err = q.Replay(ctx, bad)
	require.ErrorContains(t, err, "its 3145728-byte message was too large to keep in the dead letter: rebuild its source instead")
	n, _ = q.Count(ctx, dlq.Filter{})
	require.EqualValues(t, 2, n)
}

func TestReplayFull(t *testing.T) {
	cfg := topology.DefaultConfig()
	cfg.Sources.MaxMsgs = 1
	js, q := setup(t, cfg)
	ctx := context.Background()
	for _, id := range []string{"s1", "s2", "s3"} {
		deadLetter(t, js, sourceLetter(t, "a", id, false))
	}
	entries, err := q.List(ctx, dlq.Filter{}, 0)
	require.NoError(t, err)
	done, err := q.Replay(ctx, entries)
	require.ErrorIs(t, err, dlq.ErrFull)
	require.Equal(t, []uint64{1}, done)
	n, _ := q.Count(ctx, dlq.Filter{})
	require.EqualValues(t, 2, n, "what was not replayed stays")
}

func TestPurgeDelete(t *testing.T) {
	js, q := setup(t, topology.DefaultConfig())
	ctx := context.Background()
	deadLetter(t, js, sourceLetter(t, "a", "s1", false))
	deadLetter(t, js, sourceLetter(t, "b", "s2", false))
	deadLetter(t, js, sourceLetter(t, "b", "s3", false))
	deadLetter(t, js, sourceLetter(t, "c", "s4", false))

	require.NoError(t, q.Delete(ctx, []uint64{1}))
	require.ErrorIs(t, q.Delete(ctx, []uint64{1}), dlq.ErrNotFound)
	n, err := q.Purge(ctx, dlq.Filter{Stage: "fetch", Dataset: "b"})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	left, err := q.List(ctx, dlq.Filter{}, 0)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, "c", left[0].Dataset)
	n, err = q.Purge(ctx, dlq.Filter{})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, _ = q.Count(ctx, dlq.Filter{})
	require.Zero(t, n)
}
