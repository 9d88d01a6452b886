package pipeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Progress counts a source's records as its chunks commit, before its last
// part; chunks of an earlier run count only once their source is done.
func TestTrackerProgressCountsPartialSources(t *testing.T) {
	tr := NewTracker(nil, []Tracked{{ID: "big", Dataset: "ds"}, {ID: "small", Dataset: "ds"}})
	tr.start = time.Now()
	chunk := func(seq uint64, at time.Time, parts ...wire.PartRef) []byte {
		data, err := wire.Encode(&wire.Chunk{Dataset: "ds", Seq: seq, CreatedAt: at, Parts: parts})
		require.NoError(t, err)
		return data
	}
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
