package rebuild_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/rebuild"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func setup(t *testing.T, cfg topology.Config) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t))
	_, err := topology.Ensure(context.Background(), js, cfg)
	require.NoError(t, err)
	return js
}

func publish(t *testing.T, js jetstream.JetStream, dataset string, data []byte, hdr nats.Header) {
	t.Helper()
	_, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "trainfeed.sources." + dataset, Data: data, Header: hdr})
	require.NoError(t, err)
}

func msgpackSource(t *testing.T, id, url string) []byte {
	t.Helper()
	b, err := wire.Encode(&wire.Source{ID: id, URL: url, Format: "csv", Headers: map[string]string{"A": "b"}})
	require.NoError(t, err)
	return b
}

// sources returns the sources on subject trainfeed.sources.<dataset>, with their Msg-Ids.
func sources(t *testing.T, js jetstream.JetStream, dataset string) ([]wire.Source, []string) {
	t.Helper()
	s, err := js.Stream(context.Background(), topology.StreamSources)
	require.NoError(t, err)
	var out []wire.Source
	var ids []string
	for seq := uint64(1); ; {
		m, err := s.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject("trainfeed.sources."+dataset))
		if err != nil {
			require.ErrorIs(t, err, jetstream.ErrMsgNotFound)
			return out, ids
		}
		src, err := wire.DecodeSource(m.Data, m.Header.Get("Content-Type"))
		require.NoError(t, err)
		out = append(out, src)
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		seq = m.Sequence + 1
	}
}

func TestRebuildInto(t *testing.T) {
	js := setup(t, topology.DefaultConfig())
	ctx := context.Background()
	publish(t, js, "a", msgpackSource(t, "one", "https://x/1.csv"), nil)                                     // seq 1
	publish(t, js, "b", msgpackSource(t, "other", "https://x/o.csv"), nil)                                   // seq 2
	publish(t, js, "a", []byte(`{"url": "https://x/2.csv"}`), nil)                                           // seq 3: no id
	publish(t, js, "a", []byte(`{"url": "https://x/3.csv", "bogus": 1}`), nil)                               // seq 4: malformed
	publish(t, js, "a", []byte(`{"url": "https://x/4.csv", "id": "four"}`), nats.Header{"X": []string{"y"}}) // seq 5

	res, err := rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", Into: "a2", DryRun: true})
	require.NoError(t, err)
	require.Equal(t, rebuild.Result{Published: 3, Skipped: 1, FirstSeq: 1, LastSeq: 5}, res)
	got, _ := sources(t, js, "a2")
	require.Empty(t, got, "a dry run publishes nothing")

	res, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", Into: "a2"})
	require.NoError(t, err)
	require.Equal(t, rebuild.Result{Published: 3, Skipped: 1, FirstSeq: 1, LastSeq: 5}, res)
	got, msgIDs := sources(t, js, "a2")
	require.Len(t, got, 3)
	require.Equal(t, []string{"one", "s3", "four"}, []string{got[0].ID, got[1].ID, got[2].ID}, "ids kept; a missing one is the one fetch gave it")
	require.Equal(t, "a2", got[0].Dataset)
	require.Equal(t, "csv", got[0].Format)
	require.Equal(t, map[string]string{"A": "b"}, got[0].Headers)
	require.Equal(t, []string{wire.RebuildMsgID("a2", 1), wire.RebuildMsgID("a2", 3), wire.RebuildMsgID("a2", 5)}, msgIDs)

	// Again within the duplicate window: nothing new.
	_, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", Into: "a2"})
	require.NoError(t, err)
	got, _ = sources(t, js, "a2")
	require.Len(t, got, 3)
}

func TestRebuildSameDatasetStopsAtItsStart(t *testing.T) {
	js := setup(t, topology.DefaultConfig())
	ctx := context.Background()
	for _, id := range []string{"1", "2", "3"} {
		publish(t, js, "a", msgpackSource(t, id, "https://x/"+id+".csv"), nil)
	}
	res, err := rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", FromSeq: 2})
	require.NoError(t, err)
	require.Equal(t, rebuild.Result{Published: 2, FirstSeq: 2, LastSeq: 3}, res, "its own publishes are not read again")
	got, _ := sources(t, js, "a")
	require.Len(t, got, 5)

	res, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", Since: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.Zero(t, res.Published)
	res, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", Into: "b", Since: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	require.Equal(t, 5, res.Published)
	res, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "nothing"})
	require.NoError(t, err)
	require.Zero(t, res.Published)

	_, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "a", FromSeq: 1, Since: time.Now()})
	require.Error(t, err)
	_, err = rebuild.Run(ctx, js, rebuild.Config{Dataset: "a.b"})
	require.Error(t, err)
}

func TestRebuildFull(t *testing.T) {
	cfg := topology.DefaultConfig()
	cfg.Sources.MaxMsgs = 3
	js := setup(t, cfg)
	for _, id := range []string{"1", "2"} {
		publish(t, js, "a", msgpackSource(t, id, "https://x/"+id+".csv"), nil)
	}
	res, err := rebuild.Run(context.Background(), js, rebuild.Config{Dataset: "a", Into: "b"})
	require.ErrorIs(t, err, rebuild.ErrFull)
	require.Equal(t, rebuild.Result{Published: 1, FirstSeq: 1, LastSeq: 1}, res, "LastSeq+1 is where to resume")
}
