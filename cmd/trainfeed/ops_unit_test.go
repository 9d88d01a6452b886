package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/topology"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "512MiB": 512 << 20, "1GiB": 1 << 30, "2gb": 2e9, "1.5K": 1536, "10 MB": 10e6, "7B": 7,
	} {
		var b byteSize
		require.NoError(t, b.Set(in), in)
		require.Equal(t, want, int64(b), in)
	}
	for _, in := range []string{"", "lots", "-1MiB", "MiB"} {
		var b byteSize
		require.Error(t, b.Set(in), in)
	}
	b := byteSize(1 << 30)
	require.Equal(t, "1GiB", b.String())
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	got, err := parseSince("2h", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-2*time.Hour), got)
	got, err = parseSince("2025-02-28T00:00:00Z", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 2, 28, 0, 0, 0, 0, time.UTC), got)
	_, err = parseSince("yesterday", now)
	require.Error(t, err)
}

func TestPublishEntries(t *testing.T) {
	_, err := publishEntries(nil, "", urlFlags{}, nil)
	require.ErrorContains(t, err, "give URL arguments or --sources")
	_, err = publishEntries([]string{"http://x/a", "http://x/b"}, "", urlFlags{id: "id1"}, nil)
	require.ErrorContains(t, err, "--id names one source")
	_, err = publishEntries(nil, "f.txt", urlFlags{id: "id1"}, nil)
	require.ErrorContains(t, err, "for URL arguments")
	_, err = publishEntries(nil, "f.txt", urlFlags{records: "data"}, nil)
	require.ErrorContains(t, err, "for URL arguments")
	_, err = publishEntries([]string{"http://x/a"}, "", urlFlags{headers: []string{"nocolon"}}, nil)
	require.ErrorContains(t, err, "Name: value")

	es, err := publishEntries([]string{"http://x/api"}, "", urlFlags{records: "data.items"}, nil)
	require.NoError(t, err)
	require.NoError(t, es[0].Err)
	require.Equal(t, "data.items", es[0].Source.Records)
	es, err = publishEntries([]string{"http://x/api"}, "", urlFlags{records: "data..items"}, nil)
	require.NoError(t, err)
	require.ErrorContains(t, es[0].Err, "argument 1: records path \"data..items\": empty key")
	es, err = publishEntries([]string{"http://x/api"}, "", urlFlags{records: "data", format: "csv"}, nil)
	require.NoError(t, err)
	require.ErrorContains(t, es[0].Err, "needs a JSON document")

	es, err = publishEntries([]string{"http://x/a.csv", "has space", `{"url": "http://x/b", "id": "b"}`}, "",
		urlFlags{format: "csv", headers: []string{"Authorization: Bearer t"}}, nil)
	require.NoError(t, err)
	require.Len(t, es, 3)
	require.NoError(t, es[0].Err)
	require.Equal(t, "csv", es[0].Source.Format)
	require.Equal(t, map[string]string{"Authorization": "Bearer t"}, es[0].Source.Headers)
	require.ErrorContains(t, es[1].Err, "argument 2")
	require.Equal(t, "b", es[2].Source.ID)
}

// publish --sources FILE: good lines are published and acknowledged, a bad
// one is reported and skipped (exit 1); a line with an id is idempotent.
func TestPublishSourcesFile(t *testing.T) {
	p := startServe(t, "--out", t.TempDir(), "--stages", "combine")
	file := filepath.Join(t.TempDir(), "sources.txt")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join([]string{
		"# a comment",
		"https://example.com/a.csv",
		`{"url": "https://example.com/b.csv", "id": "b", "dataset": "other"}`,
		"not a url",
		"",
		"https://example.com/c.csv",
	}, "\n")), 0o644))
	stdout, stderr, code := tf(t, "publish", "--nats", p.nats, "--sources", file, "--dataset", "mine")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "skipped: line 4: not a URL or path")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^\S+\tmine\thttps://example.com/a.csv$`, lines[0])
	require.Equal(t, "b\tother\thttps://example.com/b.csv", lines[1])

	stdout, stderr, code = tf(t, "publish", "--nats", p.nats, "--sources", "-") // stdin is empty
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "no sources")

	nc, err := nats.Connect(p.nats)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, _, code = tf(t, "publish", "--nats", p.nats, "--dataset", "other", "--id", "b", "https://example.com/b.csv")
	require.Equal(t, 0, code)
	s, err := js.Stream(context.Background(), topology.StreamSources)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 3, info.State.Msgs, "the source with id b was stored once")
}

// dlq purge and rebuild, as a user runs them.
func TestDLQPurgeAndRebuildCommands(t *testing.T) {
	src := newFlakySource(t, 10, 0, map[int]int{0: 404, 1: 404, 2: 410})
	p := startServe(t, "--out", t.TempDir(), "--stages", "fetch")
	resp, body := p.postSources(t, src.jsonSources(0, 3))
	require.Equal(t, 202, resp.StatusCode, body)
	require.Eventually(t, func() bool { return len(dlqEntries(t, p.nats)) == 3 }, 10*time.Second, 50*time.Millisecond)

	_, stderr, code := tf(t, "dlq", "purge", "--nats", p.nats)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "say which")
	_, stderr, code = tf(t, "dlq", "purge", "--all", "--stage", "fetch", "--nats", p.nats)
	require.Equal(t, 2, code, stderr)
	out, stderr, code := tf(t, "dlq", "purge", "--stage", "fetch", "--dataset", "elsewhere", "--nats", p.nats)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "0 purged\n", out)
	first := fmt.Sprint(dlqEntries(t, p.nats)[0]["id"])
	out, _, code = tf(t, "dlq", "purge", first, "--nats", p.nats)
	require.Equal(t, 0, code)
	require.Equal(t, "1 purged\n", out)
	_, stderr, code = tf(t, "dlq", "show", first, "--nats", p.nats)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "no such dead letter")
	out, _, code = tf(t, "dlq", "replay", "--all", "--dry-run", "--nats", p.nats)
	require.Equal(t, 0, code)
	require.Equal(t, 2, strings.Count(out, "would replay"))
	out, _, code = tf(t, "dlq", "purge", "--all", "--nats", p.nats)
	require.Equal(t, 0, code)
	require.Equal(t, "2 purged\n", out)

	out, stderr, code = tf(t, "rebuild", "--nats", p.nats, "--dataset", "default", "--into", "copy", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "would publish 3 sources of default into copy (stream seq 1-3), 0 unreadable skipped\n", out)
	out, stderr, code = tf(t, "rebuild", "--nats", p.nats, "--dataset", "default", "--into", "copy", "--since", "1h")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "published 3 sources of default into copy")
	require.Eventually(t, func() bool { return len(dlqEntries(t, p.nats, "--dataset", "copy")) == 3 }, 10*time.Second, 50*time.Millisecond,
		"the rebuilt sources were fetched (and failed again) in the new dataset")
}
