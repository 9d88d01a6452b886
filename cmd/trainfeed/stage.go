package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// stageLong is the part of every stage command's help that says how members
// behave.
const stageLong = `
Every process started with this command against the same NATS is a member of
the stage's consumer group: start any number, on any machine; each pulls only
what its share of the ack window allows. A member that dies leaves its
unacknowledged messages to the others after AckWait. On SIGINT or SIGTERM a
member stops pulling, finishes or hands back what it holds, and exits 0.

At start the member creates or updates trainfeed's streams, consumers and
buckets (--replicas: 3 on a cluster of 3 or more servers, else 1), retrying
while a new cluster elects its leader. With --ensure-topology=false it only
looks them up, waiting until they exist: for NATS users that may not manage
streams (docs/security.md; create them with trainfeed setup).`

func fetchCmd() *cobra.Command {
	var (
		cfg  pipeline.Config
		root string
	)
	s := &stageCmd{stage: topology.ConsumerFetch}
	cmd := &cobra.Command{
		Use:   "fetch --nats URL",
		Short: "Run one member of the fetch stage: download sources into the bodies object store",
		Long: "fetch downloads the sources published to trainfeed.sources.<dataset> into the\n" +
			"bodies object store and announces each on trainfeed.fetched.<dataset>.\n" + stageLong,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Fetch.Root = root // "": local files and file:// URLs are refused
			return s.run(cmd, cfg)
		},
	}
	fl := cmd.Flags()
	s.addFlags(fl)
	fl.StringVar(&root, "root", "", "local files and file:// URLs are allowed only below this folder (default: refused)")
	addFetchFlags(fl, &cfg.Fetch)
	fl.DurationVar(&cfg.Fetch.Timeout, "timeout", 30*time.Minute,
		"bound one fetch: waiting for a slot, download, upload and publish (a reply a dying server never sends is waited for this long)")
	fl.IntVar(&cfg.FetchWorkers, "workers", 0, "downloads this member runs at once (default: the fetch window)")
	return cmd
}

func transformCmd() *cobra.Command {
	var (
		cfg pipeline.Config
		tf  transformFlags
	)
	s := &stageCmd{stage: topology.ConsumerTransform}
	cmd := &cobra.Command{
		Use:   "transform --nats URL",
		Short: "Run one member of the transform stage: parse bodies into typed record batches",
		Long: "transform parses the bodies trainfeed.fetched.<dataset> announces (CSV, TSV,\n" +
			"JSON lines, JSON; gzip, zstd) into record batches on trainfeed.records.<dataset>.\n" + stageLong,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tf.apply(&cfg.Transform); err != nil {
				return err
			}
			return s.run(cmd, cfg)
		},
	}
	fl := cmd.Flags()
	s.addFlags(fl)
	tf.add(fl)
	fl.IntVar(&cfg.TransformWorkers, "workers", 0, "bodies this member parses at once (default: 4 × GOMAXPROCS)")
	return cmd
}

func combineCmd() *cobra.Command {
	var (
		cfg pipeline.Config
		cf  combineFlags
	)
	s := &stageCmd{stage: topology.ConsumerCombine}
	cmd := &cobra.Command{
		Use:   "combine --nats URL --out DIR",
		Short: "Run one member of the combine stage: commit record batches as dataset chunks",
		Long: "combine writes the record batches of trainfeed.records.<dataset> as chunk files\n" +
			"in OUT/<dataset>/ and commits each exactly once in the manifest bucket. Several\n" +
			"members may run: each commits its own chunks and copies the others' from the\n" +
			"chunks object store, so every member's OUT holds the whole dataset.\n" + stageLong,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cf.apply(&cfg.Combine); err != nil {
				return err
			}
			return s.run(cmd, cfg)
		},
	}
	fl := cmd.Flags()
	s.addFlags(fl)
	cf.add(fl, "")
	return cmd
}

func setupCmd() *cobra.Command {
	s := &stageCmd{}
	cmd := &cobra.Command{
		Use:   "setup --nats URL",
		Short: "Create or update trainfeed's streams, consumers and buckets, then exit",
		Long: `setup creates or updates trainfeed's streams, consumers, key-value buckets and
object stores on a NATS server or cluster, prints them with their replicas and
exits. Stage members do the same when they start; setup is for deployments
whose stage users may not manage streams (docs/security.md): run it once with
a user that may, then start the members with --ensure-topology=false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := s.connect("trainfeed-setup")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx := cmd.Context()
			if _, err := s.ensure(ctx, nc, js); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, name := range topologyStreams {
				st, err := js.Stream(ctx, name)
				if err != nil {
					return fmt.Errorf("setup: %s: %w", name, err)
				}
				fmt.Fprintf(w, "%-28s replicas %d\n", name, st.CachedInfo().Config.Replicas)
			}
			return nil
		},
	}
	s.addFlags(cmd.Flags())
	return cmd
}

// topologyStreams names every stream setup creates, buckets included.
var topologyStreams = []string{
	topology.StreamSources, topology.StreamFetched, topology.StreamRecords, topology.StreamChunks, topology.StreamDLQ,
	"OBJ_" + topology.BucketBodies, "OBJ_" + topology.BucketChunks, "KV_" + topology.BucketManifest, "KV_" + topology.BucketCache,
}

// stageCmd is what every stage command shares: the connection, the topology
// it ensures or binds to, and the run itself.
type stageCmd struct {
	stage    string
	conn     *natsconn.Options
	topo     *topology.Config
	replicas int
	ensureTp bool
}

// addFlags registers the NATS, topology and cluster flags.
func (s *stageCmd) addFlags(fl *pflag.FlagSet) {
	s.conn = natsFlags(fl)
	s.topo = addTopologyFlags(fl)
	fl.IntVar(&s.replicas, "replicas", 0, "replicas of every stream and bucket (0: 3 on a cluster of 3 or more servers, else 1); never lowers existing ones")
	if s.stage != "" {
		fl.BoolVar(&s.ensureTp, "ensure-topology", true, "create or update streams, consumers and buckets at start; false: only look them up, waiting until they exist (the topology flags are then ignored)")
	}
}

// connect connects to NATS; the connection reconnects through server restarts.
func (s *stageCmd) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	s.conn.Name = name
	nc, err := natsconn.Connect(*s.conn)
	if err != nil {
		return nil, nil, err
	}
	// An asynchronous publish whose ack a dying stream leader never sends
	// fails after publishAckWait instead of holding its message forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(publishAckWait))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// run joins the stage's consumer group and runs the stage until the
// command's context ends (SIGINT, SIGTERM), then drains.
func (s *stageCmd) run(cmd *cobra.Command, cfg pipeline.Config) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	nc, js, err := s.connect("trainfeed-" + s.stage)
	if err != nil {
		return err
	}
	defer nc.Close()
	var topo *topology.Topology
	if s.ensureTp {
		topo, err = s.ensure(ctx, nc, js)
	} else {
		topo, err = bind(ctx, js, s.stage, stderr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	cfg.Stages = []string{s.stage}
	cfg.Logger = slog.Default()
	stages, err := pipeline.New(topo, cfg)
	if err != nil {
		return err
	}
	r := stages.Runner(s.stage)
	fmt.Fprintf(stderr, "trainfeed %s: member of consumer %q on %s (ack window %d)\n",
		s.stage, s.stage, natsconn.ServerURL(nc), r.Window())
	runErr := stages.Run(ctx)
	// The last acks and naks are on their way: make sure the server has
	// them before the connection closes.
	if err := nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		slog.Warn("flush nats connection", "err", err)
	}
	if runErr != nil {
		return runErr
	}
	st := r.Stats()
	fmt.Fprintf(stderr, "trainfeed %s: stopped: %d acked, %d retried, %d dead-lettered, %d handed back\n",
		s.stage, st.Acked.Load(), st.Retried.Load(), st.DeadLettered.Load(), st.HandedBack.Load())
	return nil
}

// publishAckWait bounds the wait for the ack of an asynchronous publish.
const publishAckWait = 10 * time.Second

// errNoPeers is JetStream's "no suitable peers for placement" (10005): too
// few servers for the replicas, or one the meta leader has not heard from yet.
const errNoPeers = 10005

// placementWait bounds how long ensure waits for servers to place replicas.
const placementWait = 30 * time.Second

// ensure creates or updates the topology with the flags' settings. Without
// --replicas it asks for 3 on a cluster of 3 or more servers, else 1. A
// cluster that has just formed (or lost a server) may refuse to place
// replicas for a moment: ensure retries that for placementWait.
func (s *stageCmd) ensure(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*topology.Topology, error) {
	cfg := *s.topo
	cfg.Replicas = s.replicas
	if cfg.Replicas == 0 {
		cfg.Replicas = topology.ReplicasFor(ctx, nc)
	}
	deadline := time.Now().Add(placementWait)
	for {
		t, err := topology.Ensure(ctx, js, cfg)
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != errNoPeers || time.Now().After(deadline) {
			if err != nil && apiErr != nil && apiErr.ErrorCode == errNoPeers {
				err = fmt.Errorf("%w (%d replicas: are that many servers up? --replicas sets them)", err, cfg.Replicas)
			}
			return t, err
		}
		slog.Warn("the cluster cannot place the replicas yet, retrying", "replicas", cfg.Replicas, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// bind looks up what a stage needs without creating anything, waiting until
// it exists: the NATS permissions of a stage user suffice (docs/security.md).
func bind(ctx context.Context, js jetstream.JetStream, stage string, stderr io.Writer) (*topology.Topology, error) {
	waiting := false
	for {
		t, err := lookup(ctx, js, stage)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) &&
			!errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
			return nil, err
		}
		if !waiting {
			fmt.Fprintf(stderr, "trainfeed %s: waiting for the topology (%v); trainfeed setup creates it\n", stage, err)
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// lookup finds the consumer and buckets of one stage.
func lookup(ctx context.Context, js jetstream.JetStream, stage string) (*topology.Topology, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := &topology.Topology{JS: js}
	var err error
	switch stage {
	case topology.ConsumerFetch:
		if t.Fetch, err = js.Consumer(ctx, topology.StreamSources, stage); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", stage, err)
		}
		if t.Bodies, err = js.ObjectStore(ctx, topology.BucketBodies); err != nil {
			return nil, fmt.Errorf("object store %s: %w", topology.BucketBodies, err)
		}
		if t.Cache, err = js.KeyValue(ctx, topology.BucketCache); err != nil {
			return nil, fmt.Errorf("key-value %s: %w", topology.BucketCache, err)
		}
	case topology.ConsumerTransform:
		if t.Transform, err = js.Consumer(ctx, topology.StreamFetched, stage); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", stage, err)
		}
		if t.Bodies, err = js.ObjectStore(ctx, topology.BucketBodies); err != nil {
			return nil, fmt.Errorf("object store %s: %w", topology.BucketBodies, err)
		}
	case topology.ConsumerCombine:
		if t.Combine, err = js.Consumer(ctx, topology.StreamRecords, stage); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", stage, err)
		}
		if t.Manifest, err = js.KeyValue(ctx, topology.BucketManifest); err != nil {
			return nil, fmt.Errorf("key-value %s: %w", topology.BucketManifest, err)
		}
		if t.Chunks, err = js.ObjectStore(ctx, topology.BucketChunks); err != nil {
			return nil, fmt.Errorf("object store %s: %w", topology.BucketChunks, err)
		}
	default:
		return nil, fmt.Errorf("unknown stage %q", stage)
	}
	return t, nil
}
