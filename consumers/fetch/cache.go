package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// cacheEntry is what the cache bucket keeps for one URL, under urlKey: the
// validators of its last 200 response and the body it stored.
type cacheEntry struct {
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Object       string    `json:"object"`
	SHA256       string    `json:"sha256"`
	Size         int64     `json:"size"`
	ContentType  string    `json:"content_type,omitempty"`
	FetchedAt    time.Time `json:"fetched_at"`
}

func (e *cacheEntry) got(status int) *got {
	return &got{object: e.Object, sha256: e.SHA256, size: e.Size, contentType: e.ContentType, fromCache: true, status: status}
}

// urlKey is the cache key of a URL fetched with the source's headers:
// "url.<hex sha256>" of the URL, followed, when the source names headers, by
// each header "\n<lower-case name>: <value>" in name order, so that sources
// whose credentials differ never share a cached body.
func urlKey(rawURL string, headers map[string]string) string {
	h := sha256.New()
	h.Write([]byte(rawURL))
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	for _, k := range names {
		fmt.Fprintf(h, "\n%s: %s", strings.ToLower(k), headers[k])
	}
	return "url." + hex.EncodeToString(h.Sum(nil))
}

// cacheable reports whether a source's fetch may use the cache: not when
// the source makes its own conditional or partial request.
func cacheable(headers map[string]string) bool {
	for k := range headers {
		switch strings.ToLower(k) {
		case "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range":
			return false
		}
	}
	return true
}

// lookup returns the URL's cache entry when its body is still stored with at
// least half the store's TTL to live; nil otherwise (no entry, an entry that
// does not decode, a body gone or about to expire).
func (h *Handler) lookup(ctx context.Context, key string) (*cacheEntry, error) {
	kve, err := h.cache.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cache: %w", err)
	}
	var e cacheEntry
	if json.Unmarshal(kve.Value(), &e) != nil || e.Object != objectPrefix+e.SHA256 {
		return nil, nil // written by something else; a fresh fetch replaces it
	}
	info, _, err := h.stored(ctx, e.Object)
	if err != nil || info == nil || int64(info.Size) != e.Size {
		return nil, err
	}
	return &e, nil
}

// save writes the URL's cache entry.
func (h *Handler) save(ctx context.Context, key string, e *cacheEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := h.cache.Put(ctx, key, data); err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	return nil
}

// getHTTP returns the body at the source's URL, stored. While the URL's
// cache entry is younger than CacheTTL its body is reused without a request;
// otherwise the request is conditional on the entry's validators and a 304
// reuses its body. A 200 body is spooled, stored and becomes the URL's entry
// (unless the response says no-store). The download holds a slot of the
// host and of the global limit from the request until the body is spooled.
func (h *Handler) getHTTP(ctx context.Context, src wire.Source, host string) (*got, error) {
	disp := display(src.URL)
	useCache := cacheable(src.Headers)
	key := urlKey(src.URL, cacheHeaders(src))
	var entry *cacheEntry
	if useCache {
		var err error
		if entry, err = h.lookup(ctx, key); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", disp, err)
		}
	}
	if entry != nil && h.cfg.CacheTTL > 0 && time.Since(entry.FetchedAt) < h.cfg.CacheTTL {
		return entry.got(0), nil
	}

	release, err := h.limits.acquire(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: wait for a download slot: %w", disp, err)
	}
	defer release()
	headers, err := h.resolveHeaders(ctx, disp, src)
	if err != nil {
		return nil, err
	}
	resp, err := h.openHTTP(ctx, src.URL, disp, headers, entry)
	if err != nil {
		return nil, err
	}
	if resp.body == nil { // 304 Not Modified
		release()
		entry.FetchedAt = time.Now().UTC()
		if resp.etag != "" {
			entry.ETag = resp.etag
		}
		if resp.lastModified != "" {
			entry.LastModified = resp.lastModified
		}
		if err := h.save(ctx, key, entry); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", disp, err)
		}
		return entry.got(http.StatusNotModified), nil
	}
	defer resp.body.Close()
	// The download slot is given back once the body is read, before a
	// small body uploads; a large one uploads as it downloads.
	b, err := h.fetchBody(ctx, resp.body, resp.contentType, func() {
		resp.body.Close()
		release()
	})
	if err != nil {
		if runner.IsPermanent(err) {
			return nil, runner.Permanent(fmt.Errorf("fetch %s: HTTP %d: %w", disp, resp.status, err))
		}
		return nil, fmt.Errorf("fetch %s: %w", disp, err)
	}
	if useCache && !resp.noStore {
		e := &cacheEntry{
			URL: disp, ETag: resp.etag, LastModified: resp.lastModified, Object: b.name(), SHA256: b.sha256,
			Size: b.size, ContentType: b.contentType, FetchedAt: time.Now().UTC(),
		}
		if err := h.save(ctx, key, e); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", disp, err)
		}
	}
	g := b.got()
	g.status = resp.status
	return g, nil
}
