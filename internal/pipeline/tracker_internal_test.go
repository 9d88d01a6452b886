package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func chunkEvent(t *testing.T, seq uint64, at time.Time, parts ...wire.PartRef) []byte {
	t.Helper()
	data, err := wire.Encode(&wire.Chunk{Dataset: "ds", Seq: seq, CreatedAt: at, Parts: parts})
	require.NoError(t, err)
	return data
}

// fetched delivers the fetch stage's outcome for source id of dataset "ds".
func fetched(t *testing.T, tr *Tracker, id, recordsAs string) {
	t.Helper()
	data, err := json.Marshal(fetch.Outcome{SourceID: id, RecordsAs: recordsAs})
	require.NoError(t, err)
	tr.onOutcome(fetch.OutcomeKey("ds", id), data)
}

// Progress counts a source's records as its chunks commit, before its last
// part; chunks of an earlier run count only once their source is done.
func TestTrackerProgressCountsPartialSources(t *testing.T) {
	tr := NewTracker(nil, []Tracked{{ID: "big", Dataset: "ds"}, {ID: "small", Dataset: "ds"}})
	tr.start = time.Now()
	fetched(t, tr, "big", "big")
	fetched(t, tr, "small", "small")
	chunk := func(seq uint64, at time.Time, parts ...wire.PartRef) []byte { return chunkEvent(t, seq, at, parts...) }
	for _, tt := range []struct {
		event       []byte
		wantDone    int
		wantRecords int64
	}{
		{chunk(1, time.Now(), wire.PartRef{SourceID: "big", Part: 0, Rows: 5000}), 0, 5000},
		{chunk(2, time.Now(), wire.PartRef{SourceID: "big", Part: 1, Rows: 5000}, wire.PartRef{SourceID: "small", Part: 0, Rows: 10, Last: true}), 1, 10010},
		{chunk(2, time.Now(), wire.PartRef{SourceID: "big", Part: 1, Rows: 5000}), 1, 10010}, // a repeat counts once
		{chunk(3, time.Now(), wire.PartRef{SourceID: "big", Part: 2, Rows: 7, Last: true}), 2, 10017},
	} {
		tr.onChunk(tt.event)
		done, total, records := tr.Progress()
		require.Equal(t, tt.wantDone, done)
		require.Equal(t, 2, total)
		require.Equal(t, tt.wantRecords, records)
	}
}

// A source is done once this run's fetch names the id its records go
// under and that id's parts are committed: an unchanged body's parts from
// an earlier run make it "existing" at once; a changed body (a new id)
// waits for its new parts.
func TestTrackerWaitsForThisRunsFetch(t *testing.T) {
	tr := NewTracker(nil, []Tracked{{ID: "same", Dataset: "ds"}, {ID: "changed", Dataset: "ds"}})
	tr.start = time.Now()
	earlier := tr.start.Add(-time.Hour)
	tr.onChunk(chunkEvent(t, 1, earlier, wire.PartRef{SourceID: "same", Part: 0, Rows: 5, Last: true},
		wire.PartRef{SourceID: "changed", Part: 0, Rows: 5, Last: true}))
	done, _, _ := tr.Progress()
	require.Zero(t, done, "parts of an earlier run finish nothing before this run's fetch")

	fetched(t, tr, "same", "same")
	fetched(t, tr, "changed", "changed@0123456789abcdef")
	done, _, _ = tr.Progress()
	require.Equal(t, 1, done)
	require.True(t, tr.sources["same"].Done)
	require.True(t, tr.sources["same"].Existing)
	require.False(t, tr.sources["changed"].Done, "a changed body waits for its own parts")

	tr.onChunk(chunkEvent(t, 2, time.Now(), wire.PartRef{SourceID: "changed@0123456789abcdef", Part: 0, Rows: 6, Last: true}))
	done, _, _ = tr.Progress()
	require.Equal(t, 2, done)
	require.False(t, tr.sources["changed"].Existing)
	require.EqualValues(t, 6, tr.sources["changed"].Records)
}
