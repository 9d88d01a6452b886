package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/internal/dlq"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge dead letters",
		Long: `Every stage's permanent failures and exhausted retries land in one stream,
TRAINFEED_DLQ, with the stage, dataset, original subject, payload, headers,
attempts and last error. An entry's ID is its sequence in that stream.

Replaying republishes the original payload to the original subject and removes
the entry; it never duplicates records (docs/dlq.md).`,
	}
	conn := natsFlags(cmd.PersistentFlags())
	open := func(ctx context.Context) (*dlq.Queue, func(), error) {
		nc, js, err := connectJS(*conn, "trainfeed-dlq")
		if err != nil {
			return nil, nil, err
		}
		q, err := dlq.Open(ctx, js)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return q, nc.Close, nil
	}
	cmd.AddCommand(dlqListCmd(open), dlqShowCmd(open), dlqReplayCmd(open), dlqPurgeCmd(open))
	return cmd
}

type openDLQ func(ctx context.Context) (*dlq.Queue, func(), error)

func addFilterFlags(cmd *cobra.Command, f *dlq.Filter) {
	cmd.Flags().StringVar(&f.Stage, "stage", "", "only this stage's dead letters: fetch, transform or combine")
	cmd.Flags().StringVar(&f.Dataset, "dataset", "", "only this dataset's dead letters")
}

func dlqListCmd(open openDLQ) *cobra.Command {
	var (
		f        dlq.Filter
		limit    int
		asJSON   bool
		full     bool
		errWidth = 100
	)
	cmd := &cobra.Command{
		Use:   "list [--stage S] [--dataset D]",
		Short: "List dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.Validate(); err != nil {
				return err
			}
			q, closeConn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeConn()
			entries, err := q.List(cmd.Context(), f, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				for i := range entries {
					e := &entries[i]
					e.Data = nil // dlq show has it
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			if full {
				errWidth = 0
			}
			printDLQTable(out, entries, time.Now(), errWidth)
			return nil
		},
	}
	addFilterFlags(cmd, &f)
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line instead of a table (without payloads)")
	cmd.Flags().BoolVar(&full, "full", false, "do not shorten errors and URLs")
	return cmd
}

func printDLQTable(w io.Writer, entries []dlq.Entry, now time.Time, width int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTAGE\tDATASET\tATTEMPTS\tAGE\tURL\tERROR")
	for _, e := range entries {
		reason := e.Error
		if e.Invalid != "" {
			reason = "unreadable dead letter: " + e.Invalid
		}
		url := e.URL
		if url == "" {
			url = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Seq, e.Stage, e.Dataset, e.Attempts,
			age(now.Sub(e.Time)), shorten(url, width), shorten(oneLine(reason), width))
	}
	_ = tw.Flush()
	if len(entries) == 0 {
		fmt.Fprintln(w, "(no dead letters)")
	}
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	case d < 48*time.Hour:
		return d.Round(time.Hour).String()
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func shorten(s string, n int) string {
	if n <= 0 || len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func dlqShowCmd(open openDLQ) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show everything about one dead letter, its payload decoded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := parseIDs(args)
			if err != nil {
				return err
			}
			q, closeConn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeConn()
			e, err := q.Get(cmd.Context(), seq[0])
			if err != nil {
				return err
			}
			payload, perr := e.Payload()
			out := cmd.OutOrStdout()
			if asJSON {
				shown := *e
				if src, ok := payload.(wire.Source); ok && e.Stage == topology.ConsumerFetch {
					// The raw payload of a source would show its credentials.
					if raw, err := json.Marshal(src); err == nil {
						shown.Data = raw
					}
				} else if perr != nil && e.Stage == topology.ConsumerFetch {
					shown.Data = []byte(wire.RedactJSON(string(e.Data)))
				}
				v := struct {
					*dlq.Entry
					Payload      any    `json:"payload,omitempty"`
					PayloadError string `json:"payload_error,omitempty"`
				}{Entry: &shown, Payload: payload}
				if perr != nil {
					v.PayloadError = perr.Error()
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printDeadLetter(out, e, payload, perr)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (the raw payload base64-encoded in data)")
	return cmd
}

func printDeadLetter(w io.Writer, e *dlq.Entry, payload any, perr error) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("id:", e.Seq)
	row("stage:", e.Stage)
	row("dataset:", e.Dataset)
	if e.Invalid != "" {
		row("unreadable:", e.Invalid)
		_ = tw.Flush()
		return
	}
	row("subject:", e.Subject)
	row("stream seq:", e.StreamSeq)
	row("source id:", e.SourceID)
	row("url:", e.URL)
	row("attempts:", e.Attempts)
	row("dead-lettered:", fmt.Sprintf("%s (%s ago)", e.At.Format(time.RFC3339), age(time.Since(e.At))))
	row("error:", e.Error)
	_ = tw.Flush()
	if len(e.Headers) > 0 {
		fmt.Fprintln(w, "headers:")
		h := nats.Header(e.Headers)
		for k := range h {
			fmt.Fprintf(w, "  %s: %s\n", k, strings.Join(h.Values(k), ", "))
		}
	}
	fmt.Fprintf(w, "payload (%d bytes):\n", len(e.Data))
	if perr != nil {
		fmt.Fprintf(w, "  does not decode: %v\n  raw: %s\n", perr, shorten(strconv.Quote(wire.RedactJSON(string(e.Data))), 2000))
		return
	}
	b, _ := json.MarshalIndent(payload, "  ", "  ")
	fmt.Fprintf(w, "  %s\n", b)
}

func parseIDs(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a dead letter id (a positive number from dlq list)", a)
		}
		out = append(out, n)
	}
	return out, nil
}

// selectEntries resolves ids or a filter (--all: everything) to entries.
func selectEntries(ctx context.Context, q *dlq.Queue, ids []uint64, f dlq.Filter, all bool) ([]dlq.Entry, error) {
	filtered := f.Stage != "" || f.Dataset != ""
	switch {
	case len(ids) > 0 && (all || filtered):
		return nil, errors.New("give ids, or --all, or --stage/--dataset: one of them")
	case len(ids) == 0 && !all && !filtered:
		return nil, errors.New("say which: ids, --all, or --stage/--dataset")
	case all && filtered:
		return nil, errors.New("--all takes no --stage/--dataset")
	}
	if len(ids) == 0 {
		return q.List(ctx, f, 0)
	}
	var out []dlq.Entry
	for _, id := range ids {
		e, err := q.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, nil
}

func dlqReplayCmd(open openDLQ) *cobra.Command {
	var (
		f        dlq.Filter
		all, dry bool
	)
	cmd := &cobra.Command{
		Use:   "replay (ID... | --all | --stage S [--dataset D])",
		Short: "Republish dead letters to their original subjects and remove them",
		Long: `replay republishes each dead letter's original payload and headers to its
original subject (with a new Nats-Msg-Id), waits for JetStream to store it, then
removes the entry. Fix the cause first: a source that fails again is
dead-lettered again, as a new entry. Replaying never duplicates records: the
stages publish under ids derived from the source, and the combine stage adds
each source's parts at most once.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return err
			}
			q, closeConn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeConn()
			entries, err := selectEntries(cmd.Context(), q, ids, f, all)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dry {
				for _, e := range entries {
					fmt.Fprintf(out, "would replay %d\t%s\t%s\n", e.Seq, e.Subject, e.URL)
				}
				return nil
			}
			done, err := q.Replay(cmd.Context(), entries)
			for _, seq := range done {
				fmt.Fprintf(out, "replayed %d\n", seq)
			}
			fmt.Fprintf(out, "%d replayed, %d left\n", len(done), len(entries)-len(done))
			if errors.Is(err, dlq.ErrFull) {
				fmt.Fprintln(cmd.ErrOrStderr(), "trainfeed dlq replay:", err)
				return exitError{code: exitFull}
			}
			return err
		},
	}
	addFilterFlags(cmd, &f)
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only say what would be replayed")
	return cmd
}

func dlqPurgeCmd(open openDLQ) *cobra.Command {
	var (
		f   dlq.Filter
		all bool
	)
	cmd := &cobra.Command{
		Use:   "purge (ID... | --all | --stage S [--dataset D])",
		Short: "Remove dead letters for good",
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return err
			}
			filtered := f.Stage != "" || f.Dataset != ""
			switch {
			case len(ids) > 0 && (all || filtered), all && filtered:
				return errors.New("give ids, or --all, or --stage/--dataset: one of them")
			case len(ids) == 0 && !all && !filtered:
				return errors.New("say which: ids, --all, or --stage/--dataset")
			}
			q, closeConn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeConn()
			if len(ids) > 0 {
				if err := q.Delete(cmd.Context(), ids); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d purged\n", len(ids))
				return nil
			}
			n, err := q.Purge(cmd.Context(), f)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d purged\n", n)
			return nil
		},
	}
	addFilterFlags(cmd, &f)
	cmd.Flags().BoolVar(&all, "all", false, "purge every dead letter")
	return cmd
}
