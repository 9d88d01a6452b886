package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// maxRetryAfter caps the delay a server may ask for with Retry-After.
const maxRetryAfter = 10 * time.Minute

// maxRedirects is how many redirects a download follows.
const maxRedirects = 10

// errIdleBody cancels a request whose body went quiet for IdleBodyTimeout.
var errIdleBody = errors.New("idle body timeout")

// open returns the body at rawURL and its content type. Errors name the URL
// and are marked Permanent when no retry can help.
func (h *Handler) open(ctx context.Context, rawURL string, headers map[string]string) (io.ReadCloser, string, error) {
	disp := display(rawURL)
	if path, ok := localPath(rawURL); ok {
		rc, ct, err := h.openFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("fetch %s: %w", disp, err)
		}
		return rc, ct, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue repeats the URL
		}
		return nil, "", runner.Permanent(fmt.Errorf("fetch %s: unsupported URL: %w", disp, err))
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, "", runner.Permanent(fmt.Errorf("fetch %s: URL has no host", disp))
		}
		return h.openHTTP(ctx, rawURL, disp, headers)
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, "", runner.Permanent(fmt.Errorf("fetch %s: file URL names host %q; only local files can be read", disp, u.Host))
		}
		if u.Path == "" {
			return nil, "", runner.Permanent(fmt.Errorf("fetch %s: file URL has no path", disp))
		}
		rc, ct, err := h.openFile(u.Path)
		if err != nil {
			return nil, "", fmt.Errorf("fetch %s: %w", disp, err)
		}
		return rc, ct, nil
	default:
		return nil, "", runner.Permanent(fmt.Errorf("fetch %s: unsupported scheme %q (want http, https or file)", disp, u.Scheme))
	}
}

// localPath reports whether s is a plain path rather than a URL: it has no
// "://" and either looks like a path (absolute, or starting with '.') or has
// no URL scheme. "a:b.csv" reads as scheme "a"; write "./a:b.csv" for the file.
func localPath(s string) (string, bool) {
	if s == "" || strings.Contains(s, "://") {
		return "", false
	}
	if filepath.IsAbs(s) || strings.HasPrefix(s, ".") {
		return s, true
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return "", false
	}
	return s, true
}

// display returns rawURL with any password replaced, for errors and logs.
func display(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		return u.Redacted()
	}
	return rawURL
}

// openHTTP sends a GET for rawURL and returns the body of a 2xx response.
// The source's headers are sent as given, after the User-Agent, so a source
// may name its own; a "Host" header sets the request's host. Go's transport
// asks for gzip and decodes it transparently, unless the source sets its own
// Accept-Encoding: then the body is stored as the server encoded it.
func (h *Handler) openHTTP(ctx context.Context, rawURL, disp string, headers map[string]string) (io.ReadCloser, string, error) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel(nil)
		return nil, "", runner.Permanent(fmt.Errorf("fetch %s: %w", disp, err))
	}
	req.Header.Set("User-Agent", h.cfg.UserAgent)
	for k, v := range headers {
		if !validHeader(k, v) {
			cancel(nil)
			return nil, "", runner.Permanent(fmt.Errorf("fetch %s: invalid header %q", disp, k))
		}
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, "", fmt.Errorf("fetch %s: %w", disp, requestError(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Not drained: a stalled error body must not hold the worker, and
		// the connection is simply not reused.
		resp.Body.Close()
		cancel(nil)
		err := fmt.Errorf("GET %s: %s", disp, resp.Status)
		if !retryableStatus(resp.StatusCode) {
			return nil, "", runner.Permanent(err)
		}
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return nil, "", runner.RetryAfter(err, d)
		}
		return nil, "", err
	}
	if resp.ContentLength > h.cfg.MaxBodyBytes {
		resp.Body.Close()
		cancel(nil)
		return nil, "", runner.Permanent(fmt.Errorf("fetch %s: body larger than %d bytes (Content-Length %d)",
			disp, h.cfg.MaxBodyBytes, resp.ContentLength))
	}
	b := &httpBody{body: resp.Body, ctx: reqCtx, cancel: cancel, idle: h.cfg.IdleBodyTimeout}
	b.timer = time.AfterFunc(b.idle, func() { cancel(errIdleBody) })
	b.timer.Stop()
	return b, resp.Header.Get("Content-Type"), nil
}

// validHeader reports whether k is a header name (a token) and v a value
// without line breaks or NULs, as HTTP requires.
func validHeader(k, v string) bool {
	if k == "" || strings.ContainsAny(v, "\r\n\x00") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// retryableStatus reports the statuses worth another attempt: 408 Request
// Timeout, 425 Too Early, 429 Too Many Requests and every 5xx.
func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	default:
		return code >= 500 && code <= 599
	}
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP date,
// capped at maxRetryAfter. It reports false when there is no usable delay (no
// header, garbage, or a delay of zero or less), leaving the runner's backoff
// to choose.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

// checkRedirect follows at most maxRedirects redirects, to http or https only.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return runner.Permanent(fmt.Errorf("redirected to unsupported scheme %q", req.URL.Scheme))
	}
	if len(via) >= maxRedirects {
		return runner.Permanent(fmt.Errorf("stopped after %d redirects", maxRedirects))
	}
	return nil
}

// requestError drops the URL a *url.Error repeats and marks the errors no
// retry can fix: an untrusted or mismatched certificate, a refused redirect.
// Everything else (dial, reset, timeouts) stays transient.
func requestError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) && !runner.IsPermanent(err) {
		return runner.Permanent(err)
	}
	return err
}

// readError explains the read errors worth explaining.
func readError(err error) error {
	switch {
	case errors.Is(err, errIdleBody):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("connection closed before the end of the body: %w", err)
	}
	return err
}

// httpBody is a response body that fails when no byte arrives for idle:
// a timer, running only while a Read waits, cancels the request.
type httpBody struct {
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer
}

func (b *httpBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errIdleBody) {
		// Not wrapping err: it says "context canceled", which the runner
		// would take for a shutdown.
		err = fmt.Errorf("no data for %s: %w", b.idle, errIdleBody)
	}
	return n, err
}

func (b *httpBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

// openFile opens the local file at path: relative paths are taken from the
// root; the file, with its symbolic links resolved, must be a regular file at
// or below the root. It returns the file and a content type guessed from its
// extension.
func (h *Handler) openFile(path string) (io.ReadCloser, string, error) {
	if h.root == "" {
		return nil, "", runner.Permanent(errors.New("local files are not allowed (no root folder configured)"))
	}
	p := path
	if !filepath.IsAbs(p) {
		p = filepath.Join(h.root, p)
	}
	p = filepath.Clean(p)
	// Refuse what is lexically outside before touching the file system, so
	// errors tell nothing about files outside the root.
	if _, ok := within(h.root, p); !ok {
		if _, ok := within(h.rootReal, p); !ok {
			return nil, "", runner.Permanent(fmt.Errorf("outside the root folder %s", h.root))
		}
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, "", fileError(err)
	}
	rel, ok := within(h.rootReal, real)
	if !ok {
		return nil, "", runner.Permanent(fmt.Errorf("resolves to a file outside the root folder %s", h.root))
	}
	// Opening through os.Root refuses a component swapped for a symbolic
	// link to the outside after the check above.
	root, err := os.OpenRoot(h.rootReal)
	if err != nil {
		return nil, "", fmt.Errorf("open root folder: %w", err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, "", fileError(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	if fi.IsDir() {
		f.Close()
		return nil, "", runner.Permanent(errors.New("is a folder, not a file"))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, "", runner.Permanent(errors.New("not a regular file"))
	}
	if fi.Size() > h.cfg.MaxBodyBytes {
		f.Close()
		return nil, "", runner.Permanent(fmt.Errorf("body larger than %d bytes (file has %d)", h.cfg.MaxBodyBytes, fi.Size()))
	}
	return f, mime.TypeByExtension(filepath.Ext(real)), nil
}

// within returns p relative to base when p is base or below it.
func within(base, p string) (string, bool) {
	rel, err := filepath.Rel(base, p)
	if err != nil || (rel != "." && !filepath.IsLocal(rel)) {
		return "", false
	}
	return rel, true
}

// fileError marks a failure to open a local file as permanent, unless the
// process merely ran out of file descriptors.
func fileError(err error) error {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return err
	}
	return runner.Permanent(err)
}
