package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/objects"
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
			ctx := cmd.Context()
			node, err := s.connect(ctx, "trainfeed-setup")
			if err != nil {
				return err
			}
			defer node.Close()
			js := node.JS
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
	objects.StreamName(topology.BucketBodies), objects.StreamName(topology.BucketChunks), "KV_" + topology.BucketManifest, "KV_" + topology.BucketCache,
}

// stageCmd is what every stage command shares: the connection, the topology
// it ensures or binds to, and the run itself.
type stageCmd struct {
	stage    string
	http     string // operations endpoints' address, "" for none
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
		fl.StringVar(&s.http, "http", "", "serve /metrics, /healthz and /readyz on this host:port (empty: none)")
		fl.BoolVar(&s.ensureTp, "ensure-topology", true, "create or update streams, consumers and buckets at start; false: only look them up, waiting until they exist (the topology flags are then ignored)")
	}
}

// connect joins NATS with the flags' settings: the topology created or
// updated, or, with --ensure-topology=false, bound to.
func (s *stageCmd) connect(ctx context.Context, name string) (*pipeline.Node, error) {
	conn := *s.conn
	conn.Name = name
	if err := conn.Validate(); err != nil {
		return nil, err // a stage joins a NATS: it never embeds one
	}
	topo := *s.topo
	topo.Replicas = s.replicas
	topo.UpdateConsumers = s.stage == "" // setup writes the group's settings; members keep them
	cfg := pipeline.NodeConfig{NATS: conn, Topology: topo}
	if s.stage != "" && !s.ensureTp {
		cfg.BindStage = s.stage
	}
	return pipeline.Connect(ctx, cfg)
}

// run joins the stage's consumer group and runs the stage until the
// command's context ends (SIGINT, SIGTERM), then drains.
func (s *stageCmd) run(cmd *cobra.Command, cfg pipeline.Config) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	node, err := s.connect(ctx, "trainfeed-"+s.stage)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	defer node.Close()
	cfg.Stages = []string{s.stage}
	cfg.Logger = slog.Default()
	m := metrics.New(metrics.Config{JS: node.JS})
	cfg.Observe, cfg.Combine.OnCommit = m.Observe, m.Committed
	if err := node.Prepare(cfg); err != nil {
		return err
	}
	r := node.Stages.Runner(s.stage)
	m.AddRunner(s.stage, r)
	httpAt := ""
	if s.http != "" {
		ops, err := metrics.Listen(s.http, metrics.OpsMux(m, node.Ready))
		if err != nil {
			return err
		}
		defer func() {
			if err := ops.Close(5 * time.Second); err != nil {
				slog.Warn("http", "err", err)
			}
		}()
		httpAt = ", http http://" + ops.Addr()
	}
	fmt.Fprintf(stderr, "trainfeed %s: member of consumer %q on %s (ack window %d)%s\n",
		s.stage, s.stage, node.ServerURL(), r.Window(), httpAt)
	if err := node.Run(ctx); err != nil {
		return err
	}
	st := r.Stats()
	fmt.Fprintf(stderr, "trainfeed %s: stopped: %d acked, %d retried, %d dead-lettered, %d handed back\n",
		s.stage, st.Acked.Load(), st.Retried.Load(), st.DeadLettered.Load(), st.HandedBack.Load())
	return nil
}
