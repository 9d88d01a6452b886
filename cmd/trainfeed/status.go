package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/internal/metrics"
	"github.com/trainfeed/trainfeed/internal/natsconn"
)

func statusCmd() *cobra.Command {
	var (
		conn     *natsconn.Options
		interval time.Duration
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "status --nats URL",
		Short: "Show each stage's backlog, work in flight, rate, redeliveries and dead letters",
		Long: `status reads the pipeline's consumers and streams twice, --interval apart, and
prints per stage:

  PENDING      messages waiting, not delivered to any member yet
  IN FLIGHT    messages delivered and not acknowledged / the ack window; at the
               window the stage's members get nothing more
  RATE/S       deliveries per second between the two readings
  REDELIVERED  unacknowledged messages delivered more than once (retries)
  DLQ          dead letters of the stage (trainfeed dlq list)

and then each stream's size against its limits: at a limit a stream refuses
new messages and its producers wait (docs/serve.md, "Backpressure").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := connectJS(*conn, "trainfeed-status")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx := cmd.Context()
			first, err := metrics.ReadState(ctx, js)
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
			second, err := metrics.ReadState(ctx, js)
			if err != nil {
				return err
			}
			if allMissing(second) {
				return errors.New("status: no trainfeed stage consumers on this NATS (has a pipeline run here?)")
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
					*metrics.State
					Rates map[string]float64 `json:"rates"`
				}{second, rates(first, second)})
			}
			printStatus(cmd.OutOrStdout(), first, second)
			return nil
		},
	}
	fl := cmd.Flags()
	conn = natsFlags(fl)
	fl.DurationVar(&interval, "interval", time.Second, "time between the two readings the rates come from")
	fl.BoolVar(&asJSON, "json", false, "print the second reading and the rates as JSON")
	return cmd
}

func allMissing(s *metrics.State) bool {
	for _, st := range s.Stages {
		if !st.Missing {
			return false
		}
	}
	return true
}

// rates returns deliveries per second of each stage between two readings.
func rates(a, b *metrics.State) map[string]float64 {
	out := map[string]float64{}
	dt := b.At.Sub(a.At).Seconds()
	for _, sb := range b.Stages {
		sa := a.Stage(sb.Stage)
		if sa == nil || dt <= 0 || sb.Delivered < sa.Delivered {
			continue
		}
		out[sb.Stage] = float64(sb.Delivered-sa.Delivered) / dt
	}
	return out
}

func printStatus(w io.Writer, a, b *metrics.State) {
	r := rates(a, b)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tPENDING\tIN FLIGHT/WINDOW\tRATE/S\tREDELIVERED\tDLQ")
	for _, s := range b.Stages {
		if s.Missing {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%d\n", s.Stage, s.DLQ)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%.1f\t%d\t%d\n", s.Stage, s.Pending, s.AckPending, s.Window, r[s.Stage], s.Redelivered, s.DLQ)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tLIMIT\tBYTES\tLIMIT")
	for _, s := range b.Streams {
		if s.Missing {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", s.Stream)
			continue
		}
		full := ""
		if (s.MaxMessages > 0 && int64(s.Messages) >= s.MaxMessages) || (s.MaxBytes > 0 && int64(s.Bytes) >= s.MaxBytes) {
			full = " FULL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s%s\n", s.Stream, s.Messages, limit(s.MaxMessages, false), bytesHuman(int64(s.Bytes)), limit(s.MaxBytes, true), full)
	}
	_ = tw.Flush()
	if len(b.Datasets) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET	LAST CHUNK	COMMITTED	FRESHNESS P50	MAX")
	for _, d := range b.Datasets {
		p50, mx := "-", "-"
		if d.FreshnessMax > 0 {
			p50, mx = d.Freshness50.Round(time.Millisecond).String(), d.FreshnessMax.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s ago\t%s\t%s\n", d.Dataset, d.LastSeq, age(b.At.Sub(d.Committed)), p50, mx)
	}
	_ = tw.Flush()
}

func limit(n int64, bytes bool) string {
	if n <= 0 {
		return "-"
	}
	if bytes {
		return bytesHuman(n)
	}
	return fmt.Sprint(n)
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
