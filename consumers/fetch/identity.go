package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Keys of the cache bucket that give each body one source id. See
// docs/fetch.md, "Adding each body once".
//
//	content.<dataset>.<hex sha256(url "\n" parse "\n" body sha256)>  -> source id
//	id.<dataset>.<hex sha256(source id)>                            -> the content key it holds
//	source.<dataset>.<hex sha256(source id)>                        -> Outcome (JSON)
//
// parse is how the body is read: the source's format hint, followed by
// "\x00" and its records path when it has one.
func contentKey(dataset, rawURL, parse, sha string) string {
	return "content." + dataset + "." + hashHex(rawURL+"\n"+parse+"\n"+sha)
}

// OutcomeKey is the cache bucket key of the Outcome of the last fetch of
// source id in dataset.
func OutcomeKey(dataset, id string) string { return "source." + dataset + "." + hashHex(id) }

func idKey(dataset, id string) string { return "id." + dataset + "." + hashHex(id) }

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// canonical returns the source id the records of this body go under: the id
// that first delivered the same body of the same URL, in the same format, to
// the dataset. Sources fetching that body later name that id, so the
// transform and combine stages see the same part keys again and the combine
// ledger adds them at most once.
//
// The first delivery proposes its own id, unless the id already holds
// another body (a source id reused after its URL's content changed): then it
// proposes "<id>@<first 16 hex digits of the body's sha256>", whose parts
// cannot collide with the earlier body's. The first proposal stored under
// the content key wins (KV create), so concurrent members agree, and a
// redelivery after a crash finds its own choice again.
func (h *Handler) canonical(ctx context.Context, src wire.Source, sha string) (string, error) {
	parse := src.Format
	if src.Records != "" {
		// The same body read at another records path is other records.
		parse += "\x00" + src.Records
	}
	ck := contentKey(src.Dataset, src.URL, parse, sha)
	if id, ok, err := h.getString(ctx, ck); err != nil || ok {
		return id, err
	}
	var proposal string
	for _, cand := range []string{src.ID, src.ID + "@" + sha[:16], src.ID + "@" + sha} {
		ok, err := h.bind(ctx, idKey(src.Dataset, cand), ck)
		if err != nil {
			return "", err
		}
		if ok {
			proposal = cand
			break
		}
	}
	if proposal == "" {
		return "", fmt.Errorf("source id %q and its derived ids already hold other bodies", src.ID)
	}
	if _, err := h.cache.Create(ctx, ck, []byte(proposal)); err == nil {
		return proposal, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("record source id: %w", err)
	}
	id, ok, err := h.getString(ctx, ck)
	if err == nil && !ok {
		err = errors.New("record source id: entry vanished")
	}
	return id, err
}

// bind makes key hold value unless it holds another value already; it
// reports whether key holds value now.
func (h *Handler) bind(ctx context.Context, key, value string) (bool, error) {
	_, err := h.cache.Create(ctx, key, []byte(value))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("record source id: %w", err)
	}
	got, ok, err := h.getString(ctx, key)
	return ok && got == value, err
}

func (h *Handler) getString(ctx context.Context, key string) (string, bool, error) {
	e, err := h.cache.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read cache: %w", err)
	}
	return string(e.Value()), true, nil
}

// Outcome is what the fetch stage records, under OutcomeKey in the cache
// bucket, each time it passes a source on: which id its records go under and
// how its body was obtained. A tracker following sources to their chunks
// reads it to follow a source whose records go under another id.
type Outcome struct {
	// SourceID is the source's own id.
	SourceID string `json:"source_id"`
	// RecordsAs is the id its records go under: SourceID, or the id of the
	// source that first delivered the same body of the same URL.
	RecordsAs string `json:"records_as"`
	URL       string `json:"url"`
	// Status is the HTTP status (200, 304), 0 for a local file or a body
	// the cache served without a request.
	Status    int    `json:"status,omitempty"`
	FromCache bool   `json:"from_cache,omitempty"`
	SHA256    string `json:"sha256"`
	// Attempts counts the deliveries of the source, this one included.
	Attempts  uint64    `json:"attempts"`
	FetchedAt time.Time `json:"fetched_at"`
}

// recordOutcome writes the source's Outcome.
func (h *Handler) recordOutcome(ctx context.Context, src wire.Source, f *wire.Fetched, attempt uint64) error {
	data, err := json.Marshal(&Outcome{
		SourceID: src.ID, RecordsAs: f.SourceID, URL: display(src.URL), Status: f.Status, FromCache: f.FromCache,
		SHA256: f.SHA256, Attempts: attempt, FetchedAt: f.FetchedAt,
	})
	if err != nil {
		return err
	}
	if _, err := h.cache.Put(ctx, OutcomeKey(src.Dataset, src.ID), data); err != nil {
		return fmt.Errorf("record outcome: %w", err)
	}
	return nil
}
