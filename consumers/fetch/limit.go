package fetch

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// hostIdle is how long the limiter of an idle host is kept: long enough that
// a host fetched one source at a time still sees its rate limit.
const hostIdle = 5 * time.Minute

// limits bounds downloads: at most global at once in all, at most perHost at
// once to one host, and, when rate is set, at most rate request starts a
// second to one host (with bursts of burst). A zero global means no global
// bound. It is safe for concurrent use.
type limits struct {
	global  chan struct{}
	perHost int
	rate    rate.Limit
	burst   int

	mu    sync.Mutex
	hosts map[string]*hostLimit
	swept time.Time
}

// hostLimit is one host's semaphore and rate limiter.
type hostLimit struct {
	sem  chan struct{}
	rate *rate.Limiter
	refs int       // holders and waiters; guarded by limits.mu
	used time.Time // last release; guarded by limits.mu
}

func newLimits(global, perHost int, perSecond float64, burst int) *limits {
	l := &limits{perHost: perHost, hosts: map[string]*hostLimit{}, burst: max(1, burst)}
	if global > 0 {
		l.global = make(chan struct{}, global)
	}
	if perSecond > 0 {
		l.rate = rate.Limit(perSecond)
	}
	return l
}

// acquire waits for a slot of host, for its rate limit, and then for a global
// slot, in that order, so that sources waiting for a busy host hold no global
// slot. It returns the func that gives the slots back, or ctx's error.
func (l *limits) acquire(ctx context.Context, host string) (release func(), err error) {
	host = strings.ToLower(host)
	h := l.host(host)
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		l.unref(host, h)
		return nil, context.Cause(ctx)
	}
	releaseHost := func() {
		<-h.sem
		l.unref(host, h)
	}
	if h.rate != nil {
		if err := h.rate.Wait(ctx); err != nil {
			releaseHost()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
	}
	if l.global != nil {
		select {
		case l.global <- struct{}{}:
		case <-ctx.Done():
			releaseHost()
			return nil, context.Cause(ctx)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if l.global != nil {
				<-l.global
			}
			releaseHost()
		})
	}, nil
}

// host returns host's limits, counting a reference to them.
func (l *limits) host(host string) *hostLimit {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[host]
	if h == nil {
		now := time.Now()
		if len(l.hosts) >= 1024 && now.Sub(l.swept) > time.Minute {
			l.swept = now
			for k, o := range l.hosts {
				if o.refs == 0 && now.Sub(o.used) > hostIdle {
					delete(l.hosts, k)
				}
			}
		}
		h = &hostLimit{sem: make(chan struct{}, l.perHost)}
		if l.rate > 0 {
			h.rate = rate.NewLimiter(l.rate, l.burst)
		}
		l.hosts[host] = h
	}
	h.refs++
	return h
}

func (l *limits) unref(host string, h *hostLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.refs--
	h.used = time.Now()
	if h.refs == 0 && h.rate == nil {
		// Without a rate limiter an idle host has no state worth keeping.
		delete(l.hosts, host)
	}
}
