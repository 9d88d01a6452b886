package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/internal/natsconn"
	"github.com/trainfeed/trainfeed/internal/wire"
	"github.com/trainfeed/trainfeed/producers"
)

// exitFull is publish's exit code when the pipeline stayed full (EX_TEMPFAIL).
const exitFull = 75

func publishCmd() *cobra.Command {
	var (
		conn         *natsconn.Options
		dataset, src string
		uf           urlFlags
		retryFor     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "publish --nats URL [--dataset NAME] (URL... | --sources FILE)",
		Short: "Publish sources to a trainfeed pipeline on a NATS server",
		Long: `publish stores sources in the pipeline's sources stream and returns once
JetStream has acknowledged each. It prints one line per source: id, dataset, URL.

Sources are the URL arguments, or the lines of --sources FILE (- for stdin):
a URL, a path, or a JSON object {"url": …, "id": …, "dataset": …, "format": …,
"records": …, "headers": {…}}, as for trainfeed run. A source given an id (--id for a single
URL, "id" in a JSON line) is published idempotently: the same id again within
the stream's duplicate window (2 minutes) is dropped.

When the pipeline is full, publish retries for --retry-for, then stops with
exit code 75 and says which sources were not published. A line that is not a
source is reported and skipped (exit code 1 at the end).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			entries, err := publishEntries(args, src, uf, cmd.InOrStdin())
			if err != nil {
				return err
			}
			nc, js, err := connectJS(*conn, "trainfeed-publish")
			if err != nil {
				return err
			}
			defer nc.Close()
			pub, err := producers.NewPublisher(js, dataset)
			if err != nil {
				return fmt.Errorf("--dataset: %w", err)
			}
			return publishAll(cmd.Context(), pub, entries, retryFor, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	conn = natsFlags(fl)
	fl.StringVar(&dataset, "dataset", producers.DefaultDataset, "dataset of sources that name none")
	fl.StringVar(&src, "sources", "", "sources file, one URL, path or JSON object per line (- for stdin)")
	fl.StringVar(&uf.id, "id", "", "id of the source (one URL only): publishing the same id again is a no-op within the duplicate window")
	fl.StringVar(&uf.format, "format", "", "format hint for URL arguments: csv, tsv, jsonl, json")
	fl.StringVar(&uf.records, "records", "", "for URL arguments that answer a JSON document wrapping their records: the path of keys to the array of records, such as data or data.items")
	fl.StringArrayVar(&uf.headers, "header", nil, "HTTP request header for URL arguments, Name: value (repeatable)")
	fl.DurationVar(&retryFor, "retry-for", time.Minute, "while the pipeline is full, keep retrying this long (0: fail at once)")
	return cmd
}

// urlFlags are publish's settings of URL arguments.
type urlFlags struct {
	id, format, records string
	headers             []string
}

// publishEntries turns the arguments or the sources file into entries.
func publishEntries(args []string, file string, uf urlFlags, stdin io.Reader) ([]producers.Entry, error) {
	if (file == "") == (len(args) == 0) {
		return nil, errors.New("give URL arguments or --sources FILE (one of them)")
	}
	if file != "" {
		if uf.id != "" || uf.format != "" || uf.records != "" || len(uf.headers) > 0 {
			return nil, errors.New("--id, --format, --records and --header are for URL arguments; put them in the JSON lines of --sources")
		}
		return readSources(file, stdin)
	}
	if uf.id != "" && len(args) > 1 {
		return nil, errors.New("--id names one source: give one URL")
	}
	hdr := map[string]string{}
	for _, h := range uf.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--header %q: want Name: value", h)
		}
		hdr[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if len(hdr) == 0 {
		hdr = nil
	}
	var entries []producers.Entry
	for i, a := range args {
		ents, err := producers.ReadSources(strings.NewReader(a))
		if err != nil || len(ents) != 1 {
			entries = append(entries, producers.Entry{Line: i + 1, Text: a, Err: fmt.Errorf("argument %d: %q is not a URL or path", i+1, a)})
			continue
		}
		e := ents[0]
		e.Line = i + 1
		if e.Err != nil {
			e.Err = fmt.Errorf("argument %d: %w", i+1, errors.Unwrap(e.Err))
		}
		if uf.id != "" {
			e.Source.ID = uf.id
		}
		if uf.format != "" {
			e.Source.Format = uf.format
		}
		if uf.records != "" {
			e.Source.Records = uf.records
		}
		if hdr != nil {
			e.Source.Headers = hdr
		}
		if e.Err == nil {
			if err := wire.CheckFormat(e.Source.Format, e.Source.Records); err != nil {
				e.Err = fmt.Errorf("argument %d: %w", i+1, err)
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// publishAll publishes every valid entry in order, retrying while the
// pipeline is full.
func publishAll(ctx context.Context, pub *producers.Publisher, entries []producers.Entry, retryFor time.Duration, stdout, stderr io.Writer) error {
	if len(entries) == 0 {
		fmt.Fprintln(stderr, "trainfeed publish: no sources to publish")
		return nil
	}
	bad, published := 0, 0
	for i, e := range entries {
		if e.Err != nil {
			bad++
			fmt.Fprintln(stderr, "trainfeed publish: skipped:", e.Err)
			continue
		}
		got, err := publishRetry(ctx, pub, e.Source, retryFor, stderr)
		if err != nil {
			left := len(entries) - i
			if errors.Is(err, producers.ErrFull) {
				fmt.Fprintf(stderr, "trainfeed publish: pipeline full, retry later: %d published, %d not (from line %d on)\n", published, left, e.Line)
				return exitError{code: exitFull}
			}
			return fmt.Errorf("%w (%d published, %d not, from line %d on)", err, published, left, e.Line)
		}
		published++
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", got.ID, got.Dataset, got.URL)
	}
	if bad > 0 {
		return exitError{code: 1}
	}
	return nil
}

func publishRetry(ctx context.Context, pub *producers.Publisher, src producers.Source, retryFor time.Duration, stderr io.Writer) (producers.Source, error) {
	deadline := time.Now().Add(retryFor)
	delay := 250 * time.Millisecond
	for warned := false; ; {
		got, err := pub.Publish(ctx, src)
		if err == nil || !errors.Is(err, producers.ErrFull) || time.Now().Add(delay).After(deadline) {
			return got, err
		}
		if !warned {
			fmt.Fprintf(stderr, "trainfeed publish: pipeline full, retrying for up to %s\n", retryFor)
			warned = true
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
