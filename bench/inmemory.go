package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// InMemory is the plain in-memory Go loop, with no broker: cfg.Workers
// goroutines fetch sources concurrently with one pooled http.Client and
// stream each body through parse.Parse, with the transform stage's
// default options, to one combiner goroutine that writes chunk files into
// cfg.Dir (temp file, fsync, rename) and fsyncs the folder at the end.
func InMemory(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateWorkload(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxConnsPerHost:       cfg.Workers,
		MaxIdleConnsPerHost:   cfg.Workers,
		MaxIdleConns:          cfg.Workers,
		IdleConnTimeout:       90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	tc := transform.DefaultConfig()
	prog, err := cfg.program()
	if err != nil {
		return Result{}, err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sources := make(chan int)
	batches := make(chan *wire.RecordBatch, cfg.Workers)

	// The combiner: the only goroutine that touches ck.
	ck := &chunker{dir: cfg.Dir, format: cfg.Format, size: cfg.ChunkRecords, durable: true}
	combined := make(chan error, 1)
	go func() {
		var err error
		for b := range batches {
			if err != nil {
				continue // drain, so no fetcher blocks
			}
			if err = ck.add(b); err != nil {
				cancel(err)
			}
		}
		if err == nil {
			err = ck.flush()
		}
		if err == nil && len(ck.files) > 0 {
			err = ck.sync()
		}
		combined <- err
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(sources)
		for n := range cfg.Sources {
			select {
			case sources <- n:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range cfg.Workers {
		g.Go(func() error {
			for n := range sources {
				if err := fetchParse(gctx, client, tc, newTransformer(gctx, prog), cfg.sourceURL(n), strconv.Itoa(n), batches); err != nil {
					return err
				}
			}
			return nil
		})
	}
	ferr := g.Wait()
	close(batches)
	cerr := <-combined
	if cerr != nil { // the fetchers' error is then only the cancellation
		return Result{}, fmt.Errorf("in-memory: %w", cerr)
	}
	if ferr != nil {
		return Result{}, fmt.Errorf("in-memory: %w", ferr)
	}
	res := Result{Elapsed: time.Since(start), Records: ck.records, Files: ck.files}
	return res, cfg.check("in-memory", res)
}

// fetchParse GETs url and sends the batches parse.Parse makes of its
// body, transformed by tf, to out.
func fetchParse(ctx context.Context, client *http.Client, tc transform.Config, tf transformer, url, id string, out chan<- *wire.RecordBatch) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	opts := parse.ParseOptions{
		Format:        parse.DetectFormat("", url, resp.Header.Get("Content-Type")),
		MaxBatchBytes: tc.MaxBatchBytes,
		MaxBatchRows:  tc.MaxBatchRows,
	}
	part := 0
	_, err = parse.Parse(ctx, resp.Body, opts, func(b *parse.Batch) error {
		rb := &wire.RecordBatch{SourceID: id, URL: url, Part: part, Last: b.Last, Rows: b.Rows, Columns: b.Columns}
		if err := tf.apply(rb); err != nil {
			return err
		}
		part++
		select {
		case out <- rb:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return fmt.Errorf("parse %s: %w", url, err)
	}
	return nil
}
