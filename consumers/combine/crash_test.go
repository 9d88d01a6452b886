package combine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// The crash tests run the combine stage in a child process (this test
// binary, see TestMain) and kill it with SIGKILL right after a commit step.
const (
	envChild = "TRAINFEED_COMBINE_CHILD"
	envURL   = "TRAINFEED_COMBINE_NATS"
	envOut   = "TRAINFEED_COMBINE_OUT"
	envStep  = "TRAINFEED_COMBINE_CRASH_AT" // step name; the child blocks there and writes envMark
	envMark  = "TRAINFEED_COMBINE_MARK"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashTopology uses a short AckWait so messages of a killed child come back quickly.
func crashTopology() topology.Config {
	cfg := topology.DefaultConfig()
	cfg.Combine.AckWait = 2 * time.Second
	return cfg
}

func runChild() error {
	ctx, stop := signalContext()
	defer stop()
	nc, err := nats.Connect(os.Getenv(envURL))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo, err := topology.Ensure(ctx, js, crashTopology())
	if err != nil {
		return err
	}
	cfg := DefaultConfig()
	cfg.Out = os.Getenv(envOut)
	cfg.Format = chunk.JSONL
	cfg.ChunkRecords = 500
	cfg.Idle = 100 * time.Millisecond
	c, err := New(js, topo.Manifest, topo.Chunks, cfg)
	if err != nil {
		return err
	}
	if step := os.Getenv(envStep); step != "" {
		c.failpoint = func(s string) {
			if s == step {
				_ = os.WriteFile(os.Getenv(envMark), []byte(s), 0o644)
				select {} // wait for SIGKILL
			}
		}
	}
	r, err := runner.New(js, topo.Combine, runner.HandlerFunc(c.Handle), runner.Config{Stage: "combine", Annotate: c.Annotate})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	err = r.Run(ctx)
	if cerr := <-done; err == nil {
		err = cerr
	}
	return err
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() {
		<-ch
		cancel()
	}()
	return ctx, cancel
}

func startChild(t *testing.T, url, out, step, mark string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+url, envOut+"="+out, envStep+"="+step, envMark+"="+mark)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func TestCrashAtEachCommitStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	steps := []string{stepWritten, stepUploaded, stepCommitted, stepRenamed, stepManifest, stepAnnounced}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			ns := natstest.Server(t)
			_, js := natstest.Connect(t, ns)
			ctx := context.Background()
			_, err := topology.Ensure(ctx, js, crashTopology())
			require.NoError(t, err)
			const sources, rows = 12, 100 // chunks of 500 records: 5 batches each
			publishBatches(t, js, sources, rows)
			out := t.TempDir()
			mark := filepath.Join(t.TempDir(), "mark")

			// Crash at the step: SIGKILL, no cleanup of any kind.
			crashed := startChild(t, ns.ClientURL(), out, step, mark)
			require.Eventually(t, func() bool { _, err := os.Stat(mark); return err == nil },
				20*time.Second, 10*time.Millisecond, "child never reached %s", step)
			require.NoError(t, crashed.Process.Kill())
			_ = crashed.Wait()

			// A clean member takes over and finishes.
			clean := startChild(t, ns.ClientURL(), out, "", mark)
			cons, err := js.Consumer(ctx, topology.StreamRecords, topology.ConsumerCombine)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				info, err := cons.Info(ctx)
				if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
					return false
				}
				m, err := dataset.ReadManifest(out, "ds")
				return err == nil && m.Records == sources*rows
			}, 30*time.Second, 50*time.Millisecond)
			require.NoError(t, clean.Process.Signal(syscall.SIGTERM))
			require.NoError(t, clean.Wait())

			checkDataset(t, js, out, "ds", sources*rows)
			t.Logf("crash after %s: the sweep deleted %d chunk objects", step, checkSwept(t, js, out, "ds"))
		})
	}
}

// publishBatches publishes one single-batch source of rows records for each
// of sources sources to dataset "ds"; ids run from 0 to sources*rows-1.
func publishBatches(t *testing.T, js jetstream.JetStream, sources, rows int) {
	t.Helper()
	for s := range sources {
		ids := make([]int64, rows)
		for i := range ids {
			ids[i] = int64(s*rows + i)
		}
		b := &wire.RecordBatch{SourceID: fmt.Sprint("s", s), Dataset: "ds", Rows: rows, Last: true,
			Columns: []wire.Column{{Name: "id", Type: wire.TypeInt, Ints: ids}}}
		data, err := wire.Encode(b)
		require.NoError(t, err)
		_, err = js.Publish(context.Background(), "trainfeed.records.ds", data, jetstream.WithMsgID(wire.RecordsMsgID(b.Dataset, b.SourceID, b.Part)))
		require.NoError(t, err)
	}
}

// checkDataset checks that every record is in the dataset once, every manifest
// entry matches its file, no file is outside the manifest, and every chunk was
// announced once.
func checkDataset(t *testing.T, js jetstream.JetStream, out, ds string, want int) {
	t.Helper()
	m, err := dataset.ReadManifest(out, ds)
	require.NoError(t, err)
	seen := map[int64]int{}
	listed := map[string]bool{dataset.ManifestFile: true}
	for i, ch := range m.Chunks {
		require.Equal(t, uint64(i+1), ch.Seq, "chunk sequence has a hole")
		listed[ch.File] = true
		data, err := os.ReadFile(filepath.Join(out, ds, ch.File))
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, ch.SHA256, hex.EncodeToString(sum[:]))
		var n int64
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			var rec struct{ ID int64 }
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			seen[rec.ID]++
			n++
		}
		require.Equal(t, ch.Records, n)
	}
	require.Len(t, seen, want)
	for id, n := range seen {
		require.Equal(t, 1, n, "record %d", id)
	}
	files, err := os.ReadDir(filepath.Join(out, ds))
	require.NoError(t, err)
	for _, f := range files {
		require.True(t, listed[f.Name()], "%s is not in the manifest", f.Name())
	}
	s, err := js.Stream(context.Background(), topology.StreamChunks)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, len(m.Chunks), info.State.Msgs, "one chunk event per chunk")
}

// A member killed right after a rewrite's commit point (the entry
// replaced, the new file not yet in place) loses nothing: the next start
// puts the new file in place, retires the old one and rewrites the rest.
func TestCrashWhileRewriting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ns := natstest.Server(t)
	_, js := natstest.Connect(t, ns)
	ctx := context.Background()
	_, err := topology.Ensure(ctx, js, crashTopology())
	require.NoError(t, err)
	out := t.TempDir()
	mark := filepath.Join(t.TempDir(), "mark")
	const sources, rows = 6, 100
	done := func(records int64) func() bool {
		return func() bool {
			m, err := dataset.ReadManifest(out, "ds")
			if err != nil || m.Records != records {
				return false
			}
			for _, ch := range m.Chunks {
				if behind(m.SchemaOf(ch), m.Schema) {
					return false
				}
			}
			return true
		}
	}

	// Int ids commit first.
	publishBatches(t, js, sources, rows)
	first := startChild(t, ns.ClientURL(), out, "", mark)
	require.Eventually(t, done(sources*rows), 20*time.Second, 10*time.Millisecond)
	require.NoError(t, first.Process.Signal(syscall.SIGTERM))
	require.NoError(t, first.Wait())

	// Codes with leading zeros widen id to string; the member dies right
	// after its first rewrite's commit point.
	codes := &wire.RecordBatch{SourceID: "codes", Dataset: "ds", Rows: 2, Last: true,
		Columns: []wire.Column{{Name: "id", Type: wire.TypeString, Strings: []string{"00007", "00008"}}}}
	data, err := wire.Encode(codes)
	require.NoError(t, err)
	_, err = js.Publish(ctx, "trainfeed.records.ds", data, jetstream.WithMsgID(wire.RecordsMsgID(codes.Dataset, codes.SourceID, codes.Part)))
	require.NoError(t, err)
	crashed := startChild(t, ns.ClientURL(), out, stepRewritten, mark)
	require.Eventually(t, func() bool { _, err := os.Stat(mark); return err == nil },
		20*time.Second, 10*time.Millisecond, "child never rewrote a chunk")
	require.NoError(t, crashed.Process.Kill())
	_ = crashed.Wait()

	clean := startChild(t, ns.ClientURL(), out, "", mark)
	require.Eventually(t, done(sources*rows+2), 30*time.Second, 50*time.Millisecond)
	require.NoError(t, clean.Process.Signal(syscall.SIGTERM))
	require.NoError(t, clean.Wait())

	m, err := dataset.ReadManifest(out, "ds")
	require.NoError(t, err)
	require.Equal(t, []wire.Field{{Name: "id", Type: wire.TypeString}}, m.Schema)
	seen := checkStringIDs(t, out, m, chunk.JSONL, sources*rows+2)
	require.Equal(t, 1, seen["00007"])
	require.Equal(t, 1, seen["599"])
}

// checkStringIDs checks a dataset whose one column, id, is a string: the
// chunks in seq order, each file as its entry says, every id once, and no
// file in the folder the manifest does not list. It returns how often
// each id is there (once).
func checkStringIDs(t *testing.T, out string, m *dataset.Manifest, f chunk.Format, want int) map[string]int {
	t.Helper()
	schema := []wire.Field{{Name: "id", Type: wire.TypeString}}
	listed := map[string]bool{dataset.ManifestFile: true}
	seen := map[string]int{}
	for i, ch := range m.Chunks {
		require.Equal(t, uint64(i+1), ch.Seq)
		listed[ch.File] = true
		path := filepath.Join(out, "ds", ch.File)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, ch.SHA256, hex.EncodeToString(sum[:]), "chunk %d", ch.Seq)
		b, err := chunk.ReadFile(path, f, schema)
		require.NoError(t, err)
		require.EqualValues(t, ch.Records, b.Rows)
		for _, id := range b.Columns[0].Strings {
			seen[id]++
		}
	}
	require.Len(t, seen, want)
	for id, n := range seen {
		require.Equal(t, 1, n, "record %s", id)
	}
	files, err := os.ReadDir(filepath.Join(out, "ds"))
	require.NoError(t, err)
	for _, e := range files {
		require.True(t, listed[e.Name()], "%s in %s is not in the manifest", e.Name(), out)
	}
	return seen
}
