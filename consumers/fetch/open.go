package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// maxRetryAfter caps the delay a server may ask for with Retry-After.
const maxRetryAfter = 10 * time.Minute

// maxRedirects is how many redirects a download follows.
const maxRedirects = 10

// errIdleBody cancels a request whose body went quiet for IdleBodyTimeout.
var errIdleBody = errors.New("idle body timeout")

// target is where a source's body is: a local path, or the host of an
// http(s) URL.
type target struct {
	path string
	host string
}

// parseTarget reads rawURL as a local path, a file:// URL or an http(s)
// URL. Its errors are marked Permanent: no retry changes a URL.
func parseTarget(rawURL string) (target, error) {
	if path, ok := localPath(rawURL); ok {
		return target{path: path}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue repeats the URL
		}
		return target{}, runner.Permanent(fmt.Errorf("unsupported URL: %w", err))
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return target{}, runner.Permanent(errors.New("URL has no host"))
		}
		return target{host: u.Host}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return target{}, runner.Permanent(fmt.Errorf("file URL names host %q; only local files can be read", u.Host))
		}
		if u.Path == "" {
			return target{}, runner.Permanent(errors.New("file URL has no path"))
		}
		return target{path: u.Path}, nil
	default:
		return target{}, runner.Permanent(fmt.Errorf("unsupported scheme %q (want http, https or file)", u.Scheme))
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

// response is what openHTTP got: a 2xx body, or a 304 to a conditional
// request.
type response struct {
	body         io.ReadCloser // nil for 304
	status       int
	contentType  string
	etag         string
	lastModified string
	noStore      bool // Cache-Control: no-store
}

// openHTTP sends a GET for rawURL and returns a 2xx response with its body,
// or a 304 when cond (the URL's cache entry, may be nil) gave validators.
// The source's headers are sent as given, after the User-Agent, so a source
// may name its own; a "Host" header sets the request's host. Go's transport
// asks for gzip and decodes it transparently, unless the source sets its own
// Accept-Encoding: then the body is stored as the server encoded it. Errors
// name the URL and the HTTP status.
func (h *Handler) openHTTP(ctx context.Context, rawURL, disp string, headers map[string]string, cond *cacheEntry) (*response, error) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel(nil)
		return nil, runner.Permanent(fmt.Errorf("fetch %s: %w", disp, err))
	}
	req.Header.Set("User-Agent", h.cfg.UserAgent)
	for k, v := range headers {
		if !validHeader(k, v) {
			cancel(nil)
			return nil, runner.Permanent(fmt.Errorf("fetch %s: invalid header %q", disp, k))
		}
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if cond != nil {
		if cond.ETag != "" {
			req.Header.Set("If-None-Match", cond.ETag)
		}
		if cond.LastModified != "" {
			req.Header.Set("If-Modified-Since", cond.LastModified)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("fetch %s: %w", disp, requestError(err))
	}
	r := &response{
		status:       resp.StatusCode,
		contentType:  resp.Header.Get("Content-Type"),
		etag:         resp.Header.Get("ETag"),
		lastModified: resp.Header.Get("Last-Modified"),
		noStore:      noStore(resp.Header),
	}
	if resp.StatusCode == http.StatusNotModified && cond != nil {
		resp.Body.Close()
		cancel(nil)
		return r, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Not drained: a stalled error body must not hold the worker, and
		// the connection is simply not reused.
		resp.Body.Close()
		cancel(nil)
		err := fmt.Errorf("GET %s: %s", disp, resp.Status)
		if !retryableStatus(resp.StatusCode) {
			return nil, runner.Permanent(err)
		}
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return nil, runner.RetryAfter(err, d)
		}
		return nil, err
	}
	if resp.ContentLength > h.cfg.MaxBodyBytes {
		resp.Body.Close()
		cancel(nil)
		return nil, runner.Permanent(fmt.Errorf("fetch %s: %s: body larger than %d bytes (Content-Length %d)",
			disp, resp.Status, h.cfg.MaxBodyBytes, resp.ContentLength))
	}
	b := &httpBody{body: resp.Body, ctx: reqCtx, cancel: cancel, idle: h.cfg.IdleBodyTimeout}
	b.timer = time.AfterFunc(b.idle, func() { cancel(errIdleBody) })
	b.timer.Stop()
	r.body = b
	return r, nil
}

// noStore reports whether the response asks not to be stored by caches.
func noStore(hdr http.Header) bool {
	for _, v := range hdr.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return true
			}
		}
	}
	return false
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
// retry can fix: an untrusted or mismatched certificate, a refused redirect,
// a refused address. Everything else (dial, reset, timeouts) stays transient.
func requestError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cert *tls.CertificateVerificationError
	if (errors.As(err, &cert) || errors.Is(err, ErrRefused)) && !runner.IsPermanent(err) {
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
