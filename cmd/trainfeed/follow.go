package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/internal/dataset"
	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/topology"
)

func followCmd() *cobra.Command {
	var cfg dataset.FollowConfig
	var conn *natsconn.Options
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "follow --nats URL --dataset NAME --out DIR",
		Short: "Mirror a dataset's chunks and manifest into a folder as they are committed",
		Long: `follow is the trainer's side: it reads a dataset's chunk events from NATS,
downloads each chunk from the chunks object store, checks its sha256, puts it in
DIR/<dataset>/ and rewrites DIR/<dataset>/manifest.json after each one. It starts
after the last chunk its folder's manifest lists (or at --from) and runs until
interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Dataset == "" {
				return errors.New("--dataset is required")
			}
			nc, js, err := connectJS(*conn, "trainfeed-follow")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx := cmd.Context()
			// The pipeline may not have created its buckets yet: wait for them.
			var kv jetstream.KeyValue
			var store jetstream.ObjectStore
			for waited := false; ; waited = true {
				if kv, err = js.KeyValue(ctx, topology.BucketManifest); err == nil {
					if store, err = js.ObjectStore(ctx, topology.BucketChunks); err == nil {
						break
					}
				}
				if !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
					return fmt.Errorf("follow: %w", err)
				}
				if !waited {
					slog.Info("waiting for a trainfeed pipeline to create its buckets", "nats", natsconn.ServerURL(nc))
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(250 * time.Millisecond):
				}
			}
			f, err := dataset.NewFollower(js, kv, store, cfg)
			if err != nil {
				return err
			}
			if httpAddr != "" {
				ready := func(context.Context) error {
					if !nc.IsConnected() {
						return fmt.Errorf("not connected to NATS (%s)", nc.Status())
					}
					return nil
				}
				ops, err := metrics.Listen(httpAddr, metrics.OpsMux(metrics.New(metrics.Config{JS: js}), ready))
				if err != nil {
					return err
				}
				defer func() { _ = ops.Close(5 * time.Second) }()
				slog.Info("follow: serving /metrics, /healthz and /readyz", "http", "http://"+ops.Addr())
			}
			return f.Run(ctx)
		},
	}
	fl := cmd.Flags()
	conn = natsFlags(fl)
	fl.StringVar(&cfg.Dataset, "dataset", "", "dataset to follow")
	fl.StringVar(&cfg.Out, "out", "follow", "folder to mirror into; the dataset goes to OUT/<dataset>/")
	fl.Uint64Var(&cfg.From, "from", 0, "start at this chunk sequence number (default: after the last one in OUT)")
	fl.StringVar(&httpAddr, "http", "", "serve /metrics, /healthz and /readyz on this host:port (empty: none)")
	return cmd
}
