package wire_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// The message ids are a contract (docs/wire.md): a change makes a
// republish after an upgrade store duplicates.
func TestMsgIDs(t *testing.T) {
	for got, want := range map[string]string{
		wire.SourceMsgID("", "a-1"):                     "source/a-1",
		wire.SourceMsgID("team", "a-1"):                 "source/team/a-1",
		wire.FetchedMsgID("ds", "s1"):                   "fetched/ds/s1",
		wire.RecordsMsgID("ds", "s1", 3):                "records/ds/s1/3",
		wire.ChunkMsgID("ds", 12):                       "chunk/ds/12",
		wire.RewriteMsgID("ds", 12, "ab12"):             "rewrite/ds/12/ab12",
		wire.DeadLetterMsgID("fetch", "trainfeed.x", 7): "dlq/fetch/trainfeed.x/7",
		wire.ReplayMsgID(9):                             "dlq-replay/9",
		wire.RebuildMsgID("ds2", 5):                     "rebuild/ds2/5",
	} {
		require.Equal(t, want, got)
	}
}
