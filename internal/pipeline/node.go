package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/embedded"
	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// NodeConfig says how one trainfeed process joins the pipeline: run,
// serve and every stage command start the same way, through Connect.
type NodeConfig struct {
	// NATS is the server or cluster to join. With no URLs an embedded
	// server is started instead, its store in StoreDir, accepting other
	// processes on Listen when that is set.
	NATS             natsconn.Options
	StoreDir, Listen string
	// Topology is what Connect creates or updates. Replicas 0: 3 on a
	// cluster of 3 or more servers, else 1 (always 1 when embedded).
	Topology topology.Config
	// BindStage, when set, creates nothing: Connect looks up what that one
	// stage needs, waiting until it exists (docs/security.md).
	BindStage string
	// Reclaim hands back at once what consumers hold for members that
	// are gone: for a process that is the only member of every stage (the
	// embedded server, which just started).
	Reclaim bool
	// Logger receives start-up and shutdown lines. Default slog.Default().
	Logger *slog.Logger
}

// Node is a connection to the pipeline with its topology in place, and the
// stages that run on it once Prepare has built them.
type Node struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Topology *topology.Topology
	Stages   *Stages
	srv      *embedded.Server
	logger   *slog.Logger
}

// placementWait bounds how long Connect waits for a cluster that has just
// formed (or lost a server) to place replicas.
const placementWait = 30 * time.Second

// errNoPeers is JetStream's "no suitable peers for placement" (10005): too
// few servers for the replicas, or one the meta leader has not heard from yet.
const errNoPeers = 10005

// Connect starts the embedded server or connects to NATS, then creates or
// updates the topology (or binds to it). Close releases what it started.
func Connect(ctx context.Context, cfg NodeConfig) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{logger: cfg.Logger}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	topo := cfg.Topology
	if cfg.NATS.URLs == "" {
		if n.srv, err = embedded.Start(embedded.Config{StoreDir: cfg.StoreDir, Listen: cfg.Listen}); err != nil {
			return nil, err
		}
		if n.NC, err = n.srv.Connect(natsconn.LogEvents(cfg.Logger)...); err != nil {
			return nil, err
		}
		topo.Replicas = 1
		topo.UpdateConsumers = true // the sole member: its settings are the group's
	} else {
		if cfg.StoreDir != "" || cfg.Listen != "" {
			return nil, errors.New("a store folder and a listen address are for the embedded server: not with NATS URLs")
		}
		if n.NC, err = natsconn.Connect(cfg.NATS); err != nil {
			return nil, err
		}
		if topo.Replicas == 0 {
			topo.Replicas = topology.ReplicasFor(ctx, n.NC)
		}
	}
	if n.JS, err = natsconn.JetStream(n.NC); err != nil {
		return nil, err
	}
	if cfg.BindStage != "" {
		n.Topology, err = topology.Bind(ctx, n.JS, cfg.BindStage, func(missing error) {
			cfg.Logger.Warn("waiting for the topology; trainfeed setup creates it", "stage", cfg.BindStage, "missing", missing)
		})
	} else {
		n.Topology, err = ensure(ctx, n.JS, topo, cfg.Logger)
	}
	if err != nil {
		return nil, err
	}
	for _, k := range n.Topology.Kept {
		cfg.Logger.Warn("the consumer keeps the group's stored setting, not this member's; trainfeed setup changes it",
			"consumer", k.Consumer, "setting", k.Setting, "stored", k.Stored, "asked", k.Asked)
	}
	if cfg.Reclaim {
		if err := n.Topology.Reclaim(ctx); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// ensure creates or updates the topology, retrying for placementWait while
// the cluster cannot place the replicas yet.
func ensure(ctx context.Context, js jetstream.JetStream, cfg topology.Config, logger *slog.Logger) (*topology.Topology, error) {
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
		logger.Warn("the cluster cannot place the replicas yet, retrying", "replicas", cfg.Replicas, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Prepare builds the stages cfg names on the node's topology; it starts
// nothing.
func (n *Node) Prepare(cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = n.logger
	}
	s, err := New(n.Topology, cfg)
	if err != nil {
		return err
	}
	n.Stages = s
	return nil
}

// ServerURL is where other processes reach the node's NATS: the server it
// connected to, the embedded server's listen address, or a note that the
// embedded server accepts no one else.
func (n *Node) ServerURL() string {
	if n.srv == nil {
		return natsconn.ServerURL(n.NC)
	}
	if u := n.srv.ClientURL(); u != "" {
		return u
	}
	return "in-process only (no --listen)"
}

// Ready reports why the node cannot do its work now, or nil: it must be
// connected to NATS, and the consumer of every stage it runs must answer.
func (n *Node) Ready(ctx context.Context) error {
	if !n.NC.IsConnected() {
		return fmt.Errorf("not connected to NATS (%s)", n.NC.Status())
	}
	if n.Stages == nil {
		return nil
	}
	for stage := range n.Stages.runners {
		if _, err := n.Topology.ConsumerOf(stage).Info(ctx); err != nil {
			return fmt.Errorf("consumer %s: %w", stage, err)
		}
	}
	return nil
}

// Embedded reports whether the node runs its own NATS server.
func (n *Node) Embedded() bool { return n.srv != nil }

// Run runs the prepared stages until ctx ends, then drains them: in-flight
// work is finished and acked or handed back.
func (n *Node) Run(ctx context.Context) error {
	if n.Stages == nil {
		<-ctx.Done()
		return nil
	}
	return n.Stages.Run(ctx)
}

// Close makes sure the server has the last acks and publishes, closes the
// connection and stops the embedded server.
func (n *Node) Close() {
	if n.NC != nil {
		if err := n.NC.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			n.logger.Warn("flush nats connection", "err", err)
		}
		n.NC.Close()
	}
	if n.srv != nil {
		n.srv.Close()
	}
}
