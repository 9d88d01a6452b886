package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/pipeline"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/producers"
)

func serveCmd() *cobra.Command {
	var (
		conn                             *natsconn.Options
		stage                            *stageFlags
		topo                             *topology.Config
		store, listen, httpAddr, dataset string
		stages                           []string
		retryAfter                       time.Duration
		replicas                         int
	)
	cmd := &cobra.Command{
		Use:   "serve [--nats URL | --store DIR --listen ADDR] --out DIR [--http ADDR]",
		Short: "Run the stages and an HTTP API (sources, status, metrics) until stopped",
		Long: `serve is the long-running form of trainfeed: it runs the fetch, transform and
combine stages (or those --stages names) and an HTTP server until SIGINT or
SIGTERM, then stops pulling, lets in-flight work finish or hands it back, and
exits.

With --nats it joins the pipeline on that NATS server or cluster: start as
many serve (or stage) processes as you like, each consumer is one group. Without
it, serve starts an embedded NATS server with its store in --store (default
OUT/.jetstream); --listen lets other processes and NATS clients connect to it.

HTTP (--http, default 127.0.0.1:8080):
  POST /v1/sources   publish sources: a JSON object or an array of them (docs/publishing.md)
  GET  /v1/status    the pipeline state as JSON (what trainfeed status shows)
  GET  /metrics      Prometheus metrics (docs/serve.md)
  GET  /healthz      200 while serving
  GET  /readyz       200 when connected to NATS with its consumers bound, else 503`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := stage.config()
			if err != nil {
				return err
			}
			cfg.Stages = stages
			cfg.Logger = slog.Default()
			topo.Replicas = replicas
			return serve(cmd.Context(), serveOptions{
				conn: *conn, store: store, listen: listen, http: httpAddr, dataset: dataset,
				topology: *topo, stages: cfg, retryAfter: retryAfter, out: stage.combine.out,
				announce: func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) },
			})
		},
	}
	fl := cmd.Flags()
	conn = natsFlags(fl)
	fl.StringVar(&store, "store", "", "without --nats: JetStream store folder of the embedded server (default OUT/.jetstream)")
	fl.StringVar(&listen, "listen", "", "without --nats: also accept NATS clients (stage processes, trainfeed publish, nats) on this host:port")
	fl.StringVar(&httpAddr, "http", "127.0.0.1:8080", "HTTP API and /metrics address (host:port; empty: no HTTP server)")
	fl.StringVar(&dataset, "dataset", producers.DefaultDataset, "dataset of sources POSTed without one")
	fl.StringSliceVar(&stages, "stages", nil, "stages to run here: fetch, transform, combine (default all three); none: only the HTTP API")
	fl.DurationVar(&retryAfter, "retry-after", 5*time.Second, "Retry-After given to producers while the pipeline is full")
	fl.IntVar(&replicas, "replicas", 0, "with --nats: replicas of every stream and bucket (0: 3 on a cluster of 3 or more servers, else 1); never lowers existing ones")
	stage = addStageFlags(fl)
	topo = addTopologyFlags(fl)
	return cmd
}

type serveOptions struct {
	conn                         natsconn.Options
	store, listen, http, dataset string
	out                          string
	topology                     topology.Config
	stages                       pipeline.Config
	retryAfter                   time.Duration
	announce                     func(format string, args ...any)
}

// serve runs until ctx ends, then drains.
func serve(ctx context.Context, o serveOptions) error {
	o.conn.Name = "trainfeed-serve"
	cfg := pipeline.NodeConfig{NATS: o.conn, Listen: o.listen, Topology: o.topology}
	if o.conn.URLs == "" {
		cfg.StoreDir = cmp.Or(o.store, filepath.Join(o.out, ".jetstream"))
		// The server just started: whatever its consumers hold belongs to
		// a process that is gone.
		cfg.Reclaim = true
	} else if o.store != "" || o.listen != "" {
		return errors.New("--store and --listen are for the embedded server: not with --nats")
	}
	node, err := pipeline.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	js := node.JS
	m := metrics.New(metrics.Config{JS: js})
	o.stages.Observe, o.stages.Combine.OnCommit = m.Observe, m.Committed
	if err := node.Prepare(o.stages); err != nil {
		return err
	}
	running := []string{}
	for _, s := range metrics.Stages {
		if r := node.Stages.Runner(s); r != nil {
			m.AddRunner(s, r)
			running = append(running, s)
		}
	}
	pub, err := producers.NewPublisher(js, o.dataset)
	if err != nil {
		return fmt.Errorf("--dataset: %w", err)
	}

	var api *metrics.Server
	if o.http != "" {
		api, err = metrics.Listen(o.http, apiMux(js, m, node.Ready, pub, o.retryAfter))
		if err != nil {
			return err
		}
	}
	httpAt := "off"
	if api != nil {
		httpAt = "http://" + api.Addr()
	}
	o.announce("trainfeed serve: stages %v, nats %s, http %s, out %s", running, node.ServerURL(), httpAt, o.out)

	// The stages drain after ctx ends; the HTTP server keeps answering
	// (status, metrics, and sources into the stream) until they are done.
	stageErr := node.Run(ctx)
	if api != nil {
		if err := api.Close(5 * time.Second); err != nil {
			slog.Warn("serve: http", "err", err)
		}
	}
	if stageErr != nil {
		return stageErr
	}
	o.announce("trainfeed serve: stopped")
	return nil
}

// apiMux is serve's HTTP API: the operations endpoints every member
// serves (metrics.OpsMux), sources and status.
func apiMux(js jetstream.JetStream, m *metrics.Metrics, ready func(context.Context) error, pub *producers.Publisher, retryAfter time.Duration) *http.ServeMux {
	mux := metrics.OpsMux(m, ready)
	mux.Handle("/v1/sources", producers.HTTPHandler(pub, retryAfter))
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		st, err := metrics.ReadState(ctx, js)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}
