package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Sequential is the classic synchronous script: for each source in turn it
// GETs the body with one http.Client, reads all of it, parses it with
// encoding/csv and strconv into typed columns of Schema and keeps the batch
// in memory; at the end it writes every chunk into cfg.Dir.
func Sequential(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateWorkload(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}

	prog, err := cfg.program()
	if err != nil {
		return Result{}, err
	}
	var batches []*wire.RecordBatch
	for n := range cfg.Sources {
		url := cfg.sourceURL(n)
		body, err := get(ctx, client, url)
		if err != nil {
			return Result{}, fmt.Errorf("sequential: %w", err)
		}
		b, err := parseCSV(body)
		if err != nil {
			return Result{}, fmt.Errorf("sequential: parse %s: %w", url, err)
		}
		b.SourceID, b.URL, b.Last = strconv.Itoa(n), url, true
		if err := newTransformer(ctx, prog).apply(b); err != nil {
			return Result{}, fmt.Errorf("sequential: transform %s: %w", url, err)
		}
		batches = append(batches, b)
	}
	ck := &chunker{dir: cfg.Dir, format: cfg.Format, size: cfg.ChunkRecords}
	for _, b := range batches {
		if err := ck.add(b); err != nil {
			return Result{}, fmt.Errorf("sequential: %w", err)
		}
	}
	if err := ck.flush(); err != nil {
		return Result{}, fmt.Errorf("sequential: %w", err)
	}
	res := Result{Elapsed: time.Since(start), Records: ck.records, Files: ck.files}
	return res, cfg.check("sequential", res)
}

// get returns the body of url, which must answer 200.
func get(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	return body, nil
}

// parseCSV parses a body whose header names Schema's columns, in any order,
// into one batch typed as Schema says.
func parseCSV(body []byte) (*wire.RecordBatch, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	types := make(map[string]wire.Type, len(Schema))
	for _, f := range Schema {
		types[f.Name] = f.Type
	}
	b := &wire.RecordBatch{Columns: make([]wire.Column, len(header))}
	for i, name := range header {
		t, ok := types[name]
		if !ok {
			return nil, fmt.Errorf("header: unknown column %q", name)
		}
		b.Columns[i] = wire.Column{Name: name, Type: t}
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := r.FieldPos(0)
		for i, v := range rec {
			c := &b.Columns[i]
			switch c.Type {
			case wire.TypeInt:
				x, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("line %d: column %s: %w", line, c.Name, err)
				}
				c.Ints = append(c.Ints, x)
			case wire.TypeFloat:
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return nil, fmt.Errorf("line %d: column %s: %w", line, c.Name, err)
				}
				c.Floats = append(c.Floats, x)
			case wire.TypeBool:
				x, err := strconv.ParseBool(v)
				if err != nil {
					return nil, fmt.Errorf("line %d: column %s: %w", line, c.Name, err)
				}
				c.Bools = append(c.Bools, x)
			default:
				c.Strings = append(c.Strings, v)
			}
		}
		b.Rows++
	}
	return b, nil
}
