package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/rebuild"
)

func rebuildCmd() *cobra.Command {
	var (
		conn  *natsconn.Options
		cfg   rebuild.Config
		since string
	)
	cmd := &cobra.Command{
		Use:   "rebuild --nats URL --dataset NAME [--into NEW] [--from-seq N | --since TIME]",
		Short: "Publish a dataset's sources again from the sources stream",
		Long: `rebuild reads the sources the sources stream still holds for a dataset (it
keeps them for --sources-max-age, 7 days by default), from a stream sequence or
a time on, and publishes each again.

--into NEW publishes them into another dataset: a full rebuild, in its own
folder OUT/NEW with its own manifest, every record once.

Into the same dataset a rebuild is a refresh: every source is fetched again; a
body that has not changed adds nothing (the dataset already holds its records),
a body that changed is added as a new version of its source. It does not
remove anything from the dataset (docs/dlq.md, "Rebuild").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Dataset == "" {
				return errors.New("--dataset is required")
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				cfg.Since = t
			}
			nc, js, err := connectJS(*conn, "trainfeed-rebuild")
			if err != nil {
				return err
			}
			defer nc.Close()
			res, err := rebuild.Run(cmd.Context(), js, cfg)
			into := cfg.Into
			if into == "" {
				into = cfg.Dataset
			}
			verb := "published"
			if cfg.DryRun {
				verb = "would publish"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d sources of %s into %s (stream seq %d-%d), %d unreadable skipped\n",
				verb, res.Published, cfg.Dataset, into, res.FirstSeq, res.LastSeq, res.Skipped)
			if errors.Is(err, rebuild.ErrFull) {
				fmt.Fprintf(cmd.ErrOrStderr(), "trainfeed rebuild: %v; resume with --from-seq %d\n", err, res.LastSeq+1)
				return exitError{code: exitFull}
			}
			return err
		},
	}
	fl := cmd.Flags()
	conn = natsFlags(fl)
	fl.StringVar(&cfg.Dataset, "dataset", "", "dataset whose sources to publish again")
	fl.StringVar(&cfg.Into, "into", "", "dataset to publish them into (default: the same)")
	fl.Uint64Var(&cfg.FromSeq, "from-seq", 0, "start at this sources stream sequence")
	fl.StringVar(&since, "since", "", "start at sources stored since this time: RFC 3339 (2025-01-31T12:00:00Z) or a duration ago (2h)")
	fl.BoolVar(&cfg.DryRun, "dry-run", false, "count what would be published, publish nothing")
	return cmd
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time or a duration such as 2h", s)
}
