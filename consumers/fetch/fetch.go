// Package fetch is the fetch stage: it downloads each source (http, https,
// file:// or a local path) and streams its body into the bodies object store,
// content-addressed by SHA-256, then publishes a wire.Fetched that references
// it.
//
// The Handler never acknowledges anything: it returns nil once the Fetched
// message is acknowledged by JetStream, an error marked runner.Permanent when
// no retry can help (a 4xx status other than 408, 425 and 429, a bad URL, a
// missing file, a body over the size cap, a malformed source), and a plain
// error, or one carrying an HTTP Retry-After as runner.RetryAfter, when a
// later attempt may succeed (network errors, 5xx, 408, 425, 429, a truncated
// or stalled body).
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Defaults of Config's fields.
const (
	defaultMaxBodyBytes    = 4 << 30
	defaultConnectTimeout  = 10 * time.Second
	defaultHeaderTimeout   = 30 * time.Second
	defaultIdleBodyTimeout = 60 * time.Second
	defaultTimeout         = 30 * time.Minute
	defaultSpoolMemory     = 8 << 20
	defaultMaxConnsPerHost = 64
	defaultUserAgent       = "trainfeed/0.1"
)

// objectPrefix starts the name of every body in the object store:
// "sha256/<hex digest>".
const objectPrefix = "sha256/"

// Config shapes a Handler. A zero field takes its default.
type Config struct {
	// Root is the folder local sources may be read from: file:// URLs and
	// plain paths are allowed only at or below it once both are made absolute
	// and their symbolic links resolved; relative paths are taken relative to
	// it. Empty: local files are refused.
	Root string
	// MaxBodyBytes caps a body (after transparent gzip decoding); a larger
	// one fails permanently. Default 4 GiB.
	MaxBodyBytes int64
	// ConnectTimeout bounds a TCP connect and a TLS handshake. Default 10s.
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers once a request is
	// sent. Default 30s.
	HeaderTimeout time.Duration
	// IdleBodyTimeout fails a download whose body sends no byte for this
	// long. Default 60s.
	IdleBodyTimeout time.Duration
	// Timeout bounds one whole fetch: download, upload and publish.
	// Default 30m.
	Timeout time.Duration
	// SpoolMemory is how much of a body is held in memory before upload;
	// the rest spills to a temporary file in SpoolDir. Default 8 MiB.
	SpoolMemory int64
	// SpoolDir holds spilled bodies while they upload. Default os.TempDir().
	SpoolDir string
	// MaxConnsPerHost caps the connections, and the idle connections kept,
	// per host. Default 64.
	MaxConnsPerHost int
	// UserAgent is sent with every request unless the source names its own.
	// Default "trainfeed/0.1".
	UserAgent string
}

// Validate reports settings that cannot work: negative sizes, timeouts or
// connection counts, and a Root or SpoolDir that is not an existing folder.
// Zero values are valid and mean the defaults.
func (c Config) Validate() error {
	for _, v := range []struct {
		name string
		val  int64
	}{
		{"max body bytes", c.MaxBodyBytes},
		{"connect timeout", int64(c.ConnectTimeout)},
		{"header timeout", int64(c.HeaderTimeout)},
		{"idle body timeout", int64(c.IdleBodyTimeout)},
		{"timeout", int64(c.Timeout)},
		{"spool memory", c.SpoolMemory},
		{"max conns per host", int64(c.MaxConnsPerHost)},
	} {
		if v.val < 0 {
			return fmt.Errorf("%s %d: must not be negative", v.name, v.val)
		}
	}
	for name, dir := range map[string]string{"root": c.Root, "spool dir": c.SpoolDir} {
		if dir == "" {
			continue
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s %s: not a folder", name, dir)
		}
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = defaultConnectTimeout
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = defaultHeaderTimeout
	}
	if c.IdleBodyTimeout == 0 {
		c.IdleBodyTimeout = defaultIdleBodyTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.SpoolMemory == 0 {
		c.SpoolMemory = defaultSpoolMemory
	}
	if c.SpoolDir == "" {
		c.SpoolDir = os.TempDir()
	}
	if c.MaxConnsPerHost == 0 {
		c.MaxConnsPerHost = defaultMaxConnsPerHost
	}
	if c.UserAgent == "" {
		c.UserAgent = defaultUserAgent
	}
	return c
}

// Handler is the fetch stage's runner.Handler. It is safe for concurrent use;
// all its downloads share one pooled HTTP client.
type Handler struct {
	js       jetstream.JetStream
	bodies   jetstream.ObjectStore
	cfg      Config
	root     string // Root made absolute; "" when local files are refused
	rootReal string // root with its symbolic links resolved
	tr       *http.Transport
	client   *http.Client
}

var _ runner.Handler = (*Handler)(nil)

// New returns a Handler that stores bodies in bodies and publishes Fetched
// messages through js. It validates cfg and builds the HTTP client; it starts
// nothing.
func New(js jetstream.JetStream, bodies jetstream.ObjectStore, cfg Config) (*Handler, error) {
	if js == nil || bodies == nil {
		return nil, errors.New("fetch: JetStream and the bodies object store are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	cfg = cfg.withDefaults()
	h := &Handler{js: js, bodies: bodies, cfg: cfg}
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
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	h.tr = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
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
// wire.Fetched for it to the dataset's fetched subject, with Nats-Msg-Id
// "fetched/<source id>", and waits for JetStream to acknowledge it.
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

	b, err := h.download(ctx, src)
	if err != nil {
		return err
	}
	defer b.spool.Close()

	name := objectPrefix + b.sha256
	if err := h.store(ctx, name, b); err != nil {
		return fmt.Errorf("fetch %s: %w", display(src.URL), err)
	}
	data, err := wire.Encode(&wire.Fetched{
		SourceID: src.ID, Dataset: src.Dataset, URL: src.URL, Format: src.Format,
		Object: name, SHA256: b.sha256, Size: b.size, ContentType: b.contentType,
		FetchedAt: time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("fetch %s: %w", display(src.URL), err)
	}
	subject := topology.Subject(topology.SubjectFetched, src.Dataset)
	if _, err := h.js.Publish(ctx, subject, data, jetstream.WithMsgID("fetched/"+src.ID)); err != nil {
		return fmt.Errorf("fetch %s: publish to %s: %w", display(src.URL), subject, err)
	}
	return nil
}

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
	if m.Dataset != "" {
		src.Dataset = m.Dataset
	}
	return src, nil
}

// store uploads b under name unless an object of that name, which holds the
// same bytes since names are digests, is already stored.
func (h *Handler) store(ctx context.Context, name string, b *body) error {
	_, err := h.bodies.GetInfo(ctx, name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	meta := jetstream.ObjectMeta{Name: name}
	if b.contentType != "" {
		meta.Headers = map[string][]string{"Content-Type": {b.contentType}}
	}
	r, err := b.spool.Reader()
	if err != nil {
		return err
	}
	info, err := h.bodies.Put(ctx, meta, r)
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	// The object store hashes what it read; a difference means the spool
	// did not give back what it was given.
	sum, _ := hex.DecodeString(b.sha256)
	want := "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
	if info.Size != uint64(b.size) || info.Digest != want {
		_ = h.bodies.Delete(ctx, name)
		return fmt.Errorf("store %s: stored %d bytes with digest %s, want %d bytes with %s",
			name, info.Size, info.Digest, b.size, want)
	}
	return nil
}

// body is a downloaded body, spooled and hashed.
type body struct {
	spool       *spool
	sha256      string
	size        int64
	contentType string
}

// download opens the source and reads its body into a spool while hashing
// it. Errors name the URL.
func (h *Handler) download(ctx context.Context, src wire.Source) (*body, error) {
	rawURL := src.URL
	rc, contentType, err := h.open(ctx, rawURL, src.Headers)
	if err != nil {
		return nil, err
	}
	defer rc.Close()

	sp := newSpool(h.cfg.SpoolDir, h.cfg.SpoolMemory)
	hash := sha256.New()
	buf := make([]byte, 64<<10)
	var size int64
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > h.cfg.MaxBodyBytes {
				sp.Close()
				return nil, runner.Permanent(fmt.Errorf("fetch %s: body larger than %d bytes", display(rawURL), h.cfg.MaxBodyBytes))
			}
			hash.Write(buf[:n])
			if _, err := sp.Write(buf[:n]); err != nil {
				sp.Close()
				return nil, fmt.Errorf("fetch %s: %w", display(rawURL), err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			sp.Close()
			return nil, fmt.Errorf("fetch %s: read body after %d bytes: %w", display(rawURL), size, readError(rerr))
		}
	}
	return &body{spool: sp, sha256: hex.EncodeToString(hash.Sum(nil)), size: size, contentType: contentType}, nil
}
