package fetch

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"
)

// Defaults of Config's fields.
const (
	defaultMaxBodyBytes    = 4 << 30
	defaultConnectTimeout  = 10 * time.Second
	defaultHeaderTimeout   = 30 * time.Second
	defaultIdleBodyTimeout = 60 * time.Second
	defaultTimeout         = 30 * time.Minute
	defaultSpoolMemory     = 8 << 20
	defaultSpoolBudget     = 64 << 20
	defaultMaxConnsPerHost = 64
	defaultMaxInFlight     = 256
	defaultMaxPerHost      = 64
	defaultUserAgent       = "trainfeed/0.1"
)

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
	// Timeout bounds one whole fetch: waiting for a slot, download, upload
	// and publish. Default 30m.
	Timeout time.Duration
	// SpoolMemory is how much of one body is held in memory before upload;
	// the rest spills to a temporary file in SpoolDir. Default 8 MiB.
	SpoolMemory int64
	// SpoolBudget is how much memory the spools of all downloads of the
	// handler hold together; a download that finds the budget spent spills
	// straight to SpoolDir. Default 64 MiB.
	SpoolBudget int64
	// SpoolDir holds spilled bodies while they upload. Default os.TempDir().
	SpoolDir string
	// MaxInFlight caps the HTTP downloads the handler runs at once, over all
	// hosts. Default 256.
	MaxInFlight int
	// MaxPerHost caps the HTTP downloads from one host (the URL's host and
	// port) the handler runs at once. Default 64.
	MaxPerHost int
	// PerHostRate, when positive, caps the requests the handler starts to one
	// host per second, in bursts of at most PerHostBurst. Default: no rate
	// limit.
	PerHostRate float64
	// PerHostBurst is the largest burst PerHostRate allows. Default 1.
	PerHostBurst int
	// MaxConnsPerHost caps the connections, and the idle connections kept,
	// per host. Default 64, and never fewer than MaxPerHost.
	MaxConnsPerHost int
	// CacheTTL is how long a cached body is reused without asking the server
	// at all. Zero: every fetch asks, conditionally (If-None-Match,
	// If-Modified-Since) when the URL's cache entry has validators.
	CacheTTL time.Duration
	// AllowPrivate allows downloads from private (RFC 1918, unique local)
	// and loopback addresses. Link-local and cloud metadata addresses are
	// refused whatever is allowed.
	AllowPrivate bool
	// AllowHosts allows private and loopback addresses for some hosts only:
	// each entry is a host name ("*.example.internal" for its sub-domains),
	// an IP address or a CIDR network.
	AllowHosts []string
	// LookupHost resolves a host name to the addresses it may be dialled at.
	// Default: the system resolver.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
	// Secrets resolves the secret references of a source's header values
	// (${kind:name}, see secrets.go) at request time. Nil: a source that
	// names a secret fails, saying no secret store is configured.
	Secrets Secrets
	// UserAgent is sent with every request unless the source names its own.
	// Default "trainfeed/0.1".
	UserAgent string
	// Logger receives a warning when a fetched body waits for room in a full
	// fetched stream. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports settings that cannot work: negative sizes, limits or
// timeouts, an AllowHosts entry that is not a host, address or network (or
// one in a range that is always refused), and a Root or SpoolDir that is not
// an existing folder. Zero values are valid and mean the defaults.
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
		{"spool budget", c.SpoolBudget},
		{"max in flight", int64(c.MaxInFlight)},
		{"max per host", int64(c.MaxPerHost)},
		{"per host burst", int64(c.PerHostBurst)},
		{"max conns per host", int64(c.MaxConnsPerHost)},
		{"cache ttl", int64(c.CacheTTL)},
	} {
		if v.val < 0 {
			return fmt.Errorf("%s %d: must not be negative", v.name, v.val)
		}
	}
	if c.PerHostRate < 0 {
		return fmt.Errorf("per host rate %g: must not be negative", c.PerHostRate)
	}
	if _, err := newPolicy(c.AllowPrivate, c.AllowHosts, nil); err != nil {
		return err
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
	setDefault(&c.MaxBodyBytes, defaultMaxBodyBytes)
	setDefault(&c.ConnectTimeout, defaultConnectTimeout)
	setDefault(&c.HeaderTimeout, defaultHeaderTimeout)
	setDefault(&c.IdleBodyTimeout, defaultIdleBodyTimeout)
	setDefault(&c.Timeout, defaultTimeout)
	setDefault(&c.SpoolMemory, defaultSpoolMemory)
	setDefault(&c.SpoolBudget, defaultSpoolBudget)
	setDefault(&c.SpoolDir, os.TempDir())
	setDefault(&c.MaxInFlight, defaultMaxInFlight)
	setDefault(&c.MaxPerHost, defaultMaxPerHost)
	setDefault(&c.PerHostBurst, 1)
	setDefault(&c.MaxConnsPerHost, defaultMaxConnsPerHost)
	c.MaxConnsPerHost = max(c.MaxConnsPerHost, c.MaxPerHost)
	setDefault(&c.UserAgent, defaultUserAgent)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
