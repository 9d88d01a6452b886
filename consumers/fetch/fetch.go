// Package fetch is the fetch stage: it downloads each source (http, https,
// file:// or a local path) and streams its body into the bodies object store,
// content-addressed by SHA-256, then publishes a wire.Fetched that references
// it.
//
// Downloads are bounded like a polite crawler's: a global and a per-host
// limit on downloads at once, an optional per-host request rate, a memory
// budget shared by all spools, timeouts for every phase and a size cap. The
// address actually dialled is checked, after DNS and after every redirect:
// link-local and cloud metadata addresses are always refused, private and
// loopback ones unless allowed. A key-value cache shared by all fetch members
// keeps each URL's validators, so a re-fetch is conditional and a 304 reuses
// the stored body; the same bucket maps each (dataset, URL, format, body) to
// the one source id its records are added under, so unchanged content is
// never added to a dataset twice. docs/fetch.md is the operators' guide.
//
// The Handler never acknowledges anything: it returns nil once the Fetched
// message is acknowledged by JetStream, an error marked runner.Permanent when
// no retry can help (a 4xx status other than 408, 425 and 429, a bad URL, a
// refused address, a missing file, a body over the size cap, a malformed
// source), and a plain error, or one carrying an HTTP Retry-After as
// runner.RetryAfter, when a later attempt may succeed (network errors, 5xx,
// 408, 425, 429, a truncated or stalled body).
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/objects"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// objectPrefix starts the name of every body in the object store:
// "sha256/<hex digest>".
const objectPrefix = "sha256/"

// Handler is the fetch stage's runner.Handler. It is safe for concurrent use;
// all its downloads share one pooled HTTP client, one set of limits and one
// spool memory budget.
type Handler struct {
	js       jetstream.JetStream
	bodies   jetstream.ObjectStore
	objects  *objects.Lazy // bodies, written by digest
	cache    jetstream.KeyValue
	cfg      Config
	root     string // Root made absolute; "" when local files are refused
	rootReal string // root with its symbolic links resolved
	tr       *http.Transport
	client   *http.Client
	limits   *limits
	budget   *budget

	ttlMu sync.Mutex
	ttl   time.Duration // the bodies store's TTL, once known
	ttlOK bool
}

var _ runner.Handler = (*Handler)(nil)

// New returns a Handler that stores bodies in bodies, keeps its cache and
// source identities in the cache bucket (topology.BucketCache) and publishes
// Fetched messages through js. It validates cfg and builds the HTTP client;
// it starts nothing.
func New(js jetstream.JetStream, bodies jetstream.ObjectStore, cache jetstream.KeyValue, cfg Config) (*Handler, error) {
	if js == nil || bodies == nil || cache == nil {
		return nil, errors.New("fetch: JetStream, the bodies object store and the cache bucket are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	cfg = cfg.withDefaults()
	h := &Handler{
		js: js, bodies: bodies, objects: objects.NewLazy(js, bodies), cache: cache, cfg: cfg,
		limits: newLimits(cfg.MaxInFlight, cfg.MaxPerHost, cfg.PerHostRate, cfg.PerHostBurst),
		budget: newBudget(cfg.SpoolBudget),
	}
	if cfg.Root != "" {
		abs, err := filepath.Abs(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("fetch: root: %w", err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("fetch: root: %w", err)
		}
		h.root, h.rootReal = abs, real
	}
	pol, err := newPolicy(cfg.AllowPrivate, cfg.AllowHosts, cfg.LookupHost)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	dial := newDialer(pol, &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second})
	h.tr = &http.Transport{
		// No proxy: a proxy would dial addresses the policy cannot check.
		Proxy:                 nil,
		DialContext:           dial.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.HeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost:   cfg.MaxConnsPerHost,
		MaxIdleConns:          max(100, 4*cfg.MaxConnsPerHost),
		IdleConnTimeout:       90 * time.Second,
	}
	h.client = &http.Client{Transport: h.tr, CheckRedirect: checkRedirect}
	return h, nil
}

// Close closes the idle connections of the handler's HTTP client. Handle may
// still be called afterwards; it opens new connections.
func (h *Handler) Close() { h.tr.CloseIdleConnections() }

// Handle fetches the source m carries, stores its body and publishes a
// wire.Fetched for it to the dataset's fetched subject, and waits for
// JetStream to acknowledge it.
//
// The Fetched names the source id its records go under: the source's own,
// unless the same body of the same URL (and format) was already fetched for
// another source of the dataset, whose id it then names, with the source's
// own id in ForSource (see docs/fetch.md). It is published with Nats-Msg-Id
// wire.FetchedMsgID(dataset, that id), so a Fetched for the same id within the stream's
// duplicate window is dropped by JetStream.
//
// A source without an id is named "s<stream sequence>". The dataset is the
// one in m's subject: a source naming another dataset is filed under the
// subject's, so the stream's subject filter, and the permissions guarding
// it, decide where data goes.
func (h *Handler) Handle(ctx context.Context, m *runner.Msg) error {
	src, err := decode(m)
	if err != nil {
		return runner.Permanent(fmt.Errorf("malformed source: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()

	if src.PublishedAt.IsZero() {
		src.PublishedAt = m.Stored // a source published without one, by any NATS client
	}
	err = h.handle(ctx, src, m.Delivered)
	if err != nil && runner.IsPermanent(err) && m.Delivered > 1 {
		// The runner counts attempts only for errors it retried.
		err = runner.Permanent(fmt.Errorf("%w (attempt %d)", err, m.Delivered))
	}
	return err
}

func (h *Handler) handle(ctx context.Context, src wire.Source, attempt uint64) error {
	got, err := h.get(ctx, src)
	if err != nil {
		return err
	}
	disp := display(src.URL)
	// Each step from here on is a request or two: bound each by
	// requestTimeout, not by what is left of the whole fetch's Timeout, so
	// a reply lost with a dying server is retried soon.
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	id, err := h.canonical(rctx, src, got.sha256)
	cancel()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", disp, err)
	}
	f := &wire.Fetched{
		SourceID: id, Dataset: src.Dataset, URL: src.URL, Format: src.Format, Records: src.Records,
		Object: got.object, SHA256: got.sha256, Size: got.size, ContentType: got.contentType,
		FromCache: got.fromCache, Status: got.status, FetchedAt: time.Now().UTC(), PublishedAt: src.PublishedAt,
	}
	if id != src.ID {
		f.ForSource = src.ID
	}
	data, err := wire.Encode(f)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", disp, err)
	}
	subject := topology.Subject(topology.SubjectFetched, src.Dataset)
	// While the fetched stream is full the body stays in hand: publishing
	// is tried again, the download is not.
	err = runner.Publish(ctx, h.js, subject, data, wire.FetchedMsgID(src.Dataset, id), requestTimeout, func(err error) {
		h.cfg.Logger.Warn("fetched stream full, holding the body", "dataset", src.Dataset, "source", id, "url", disp, "err", err)
	})
	if err != nil {
		return fmt.Errorf("fetch %s: publish to %s: %w", disp, subject, err)
	}
	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := h.recordOutcome(rctx, src, f, attempt); err != nil {
		return fmt.Errorf("fetch %s: %w", disp, err)
	}
	return nil
}

// requestTimeout bounds each step of a fetch after its body is stored.
const requestTimeout = 10 * time.Second

// Annotate adds the source id and URL to a dead letter of m, when m holds a
// source that decodes. It is a runner.DeadLetterFunc.
func (h *Handler) Annotate(m *runner.Msg, dl *wire.DeadLetter) {
	src, err := decode(m)
	if err != nil {
		return
	}
	dl.SourceID, dl.URL = src.ID, src.URL
}

// decode reads the source m carries and fills in its id and dataset.
func decode(m *runner.Msg) (wire.Source, error) {
	src, err := wire.DecodeSource(m.Data, m.Header.Get("Content-Type"))
	if err != nil {
		return wire.Source{}, err
	}
	if src.ID == "" {
		src.ID = fmt.Sprintf("s%d", m.StreamSeq)
	}
	if !strings.HasPrefix(m.Subject, topology.SubjectSources+".") || strings.Count(m.Subject, ".") != 2 || !wire.ValidDataset(m.Dataset) {
		// trainfeed.sources.teamA.web would otherwise land in dataset web,
		// merged with another team's.
		return wire.Source{}, fmt.Errorf("subject %s names no dataset: publish sources to %s.<dataset>, "+
			"the dataset one token of 1 to 64 letters, digits, '_' or '-'", m.Subject, topology.SubjectSources)
	}
	src.Dataset = m.Dataset
	return src, nil
}

// got is a body in the object store, as a fetch found it.
type got struct {
	object      string
	sha256      string
	size        int64
	contentType string
	fromCache   bool
	status      int
}

// get returns the source's body, stored: read from a local file, reused from
// the cache, or downloaded.
func (h *Handler) get(ctx context.Context, src wire.Source) (*got, error) {
	disp := display(src.URL)
	t, err := parseTarget(src.URL)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", disp, err)
	}
	if t.path != "" {
		rc, ct, err := h.openFile(t.path)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", disp, err)
		}
		defer rc.Close()
		b, err := h.fetchBody(ctx, rc, ct, func() {})
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", disp, err)
		}
		return b.got(), nil
	}
	return h.getHTTP(ctx, src, t.host)
}
