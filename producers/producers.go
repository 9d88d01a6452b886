// Package producers publishes source descriptions into trainfeed: a Go API
// (Publisher) and a reader for sources files, one source per line.
//
// Anything that can publish to NATS can be a producer too: a JSON object
// such as {"url": "https://example.com/a.csv"} published to
// trainfeed.sources.<dataset> is a source (see docs/wire.md).
package producers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// DefaultDataset is the dataset of sources that name none.
const DefaultDataset = "default"

// ErrFull is returned, wrapped, when the sources stream is at its limits and
// refuses new sources: the pipeline is full. Nothing was stored; publish the
// source again later. Check for it with errors.Is.
var ErrFull = errors.New("pipeline full, retry later")

// Source describes one thing to ingest.
type Source struct {
	// ID identifies the source; publishing the same ID twice within the
	// stream's duplicate window is a no-op. Empty: the publisher makes one up.
	ID string
	// Dataset is the dataset the source's records join. Empty: the publisher's default.
	Dataset string
	// URL is an http(s) URL, a file:// URL or a local path.
	URL string
	// Format is a hint: csv, tsv, jsonl, json. Empty: guessed from the URL and content.
	Format string
	// Records is the path of keys to the array of records inside a JSON
	// document, such as "data" or "data.items", for an API that wraps its
	// records ({"data": [...], "next": ...}). Empty: the body is the records.
	Records string
	// Headers are sent with an HTTP request. A value may name secrets
	// (${env:NAME}, ${file:NAME}) that the fetch stage resolves.
	Headers map[string]string
	// Auth, if set, is how the request authenticates (basic auth).
	Auth *wire.SourceAuth
}

// Publisher publishes sources to JetStream and waits for each to be stored.
type Publisher struct {
	js      jetstream.JetStream
	dataset string
	scope   string // see Scoped
}

// NewPublisher returns a publisher whose sources default to dataset (empty:
// DefaultDataset).
func NewPublisher(js jetstream.JetStream, dataset string) (*Publisher, error) {
	if dataset == "" {
		dataset = DefaultDataset
	}
	if !wire.ValidDataset(dataset) {
		return nil, fmt.Errorf("publisher: invalid dataset name %q: use 1-64 letters, digits, '_' or '-'", dataset)
	}
	return &Publisher{js: js, dataset: dataset}, nil
}

// Scoped returns a publisher like p whose publishing of an ID is a no-op
// only within scope: the same ID published again in another scope is
// stored, and fetched, again. trainfeed run scopes each run so that running
// a file again revalidates every source — unchanged bodies add nothing
// (same ids), changed ones are added — while a publish it retries is still
// stored once.
func (p *Publisher) Scoped(scope string) *Publisher {
	q := *p
	q.scope = scope
	return &q
}

// Publish stores src in the sources stream and returns it with its ID and
// dataset filled in. It returns once JetStream has acknowledged it.
func (p *Publisher) Publish(ctx context.Context, src Source) (Source, error) {
	if src.Dataset == "" {
		src.Dataset = p.dataset
	}
	if !wire.ValidDataset(src.Dataset) {
		return src, fmt.Errorf("publish %s: invalid dataset name %q", src.URL, src.Dataset)
	}
	if src.URL == "" {
		return src, errors.New("publish: source has no url")
	}
	if err := checkURL(src.URL); err != nil {
		return src, fmt.Errorf("publish: %w", err)
	}
	if err := wire.CheckFormat(src.Format, src.Records); err != nil {
		return src, fmt.Errorf("publish %s: %w", src.URL, err)
	}
	if src.ID == "" {
		src.ID = nuid.Next()
	}
	data, err := wire.Encode(&wire.Source{
		ID: src.ID, Dataset: src.Dataset, URL: src.URL, Format: src.Format, Records: src.Records,
		Headers: src.Headers, Auth: src.Auth, PublishedAt: time.Now().UTC(),
	})
	if err != nil {
		return src, err
	}
	msgID := wire.SourceMsgID(p.scope, src.ID)
	_, err = p.js.Publish(ctx, topology.Subject(topology.SubjectSources, src.Dataset), data, jetstream.WithMsgID(msgID))
	if err != nil {
		if topology.IsFull(err) {
			return src, fmt.Errorf("publish %s: %w: %w", src.URL, ErrFull, err)
		}
		return src, fmt.Errorf("publish %s: %w", src.URL, err)
	}
	return src, nil
}

// StableID returns an ID for the source at line n of a sources file that is
// the same every time the same file is published, so that publishing it
// again (a restarted run, say) does not add its records twice.
func StableID(dataset, url string, n int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\n%s\n%d", dataset, url, n))
	return hex.EncodeToString(h[:10])
}
