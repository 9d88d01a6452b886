package fetch_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// resolver returns a Config.LookupHost that resolves the names of m to
// their addresses and fails for any other name.
func resolver(m map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for a := range strings.SplitSeq(m[host], ",") {
			if a != "" {
				out = append(out, netip.MustParseAddr(a))
			}
		}
		if len(out) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return out, nil
	}
}

// on returns srv's URL for path with its host replaced by name.
func on(srv *httptest.Server, name, path string) string {
	u, _ := url.Parse(srv.URL)
	return "http://" + net.JoinHostPort(name, u.Port()) + path
}

// gauge counts requests in flight, per Host header and in all, and keeps
// the peaks.
type gauge struct {
	mu             sync.Mutex
	cur, peak      map[string]int
	total, peakAll int
	starts         map[string][]time.Time
	want           int // the per-host peak waitPeak waits for (0: none)
}

func newGauge() *gauge {
	return &gauge{cur: map[string]int{}, peak: map[string]int{}, starts: map[string][]time.Time{}}
}

func (g *gauge) enter(host string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur[host]++
	g.total++
	g.peak[host] = max(g.peak[host], g.cur[host])
	g.peakAll = max(g.peakAll, g.total)
	g.starts[host] = append(g.starts[host], time.Now())
}

// waitPeak holds a request, up to d, until its host has had g.want
// requests at once, so that a loaded machine starting requests slowly still
// shows the limit reached instead of a peak just below it.
func (g *gauge) waitPeak(host string, d time.Duration) {
	deadline := time.Now().Add(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.peak[host] < g.want && time.Now().Before(deadline) {
		g.mu.Unlock()
		time.Sleep(time.Millisecond)
		g.mu.Lock()
	}
}

func (g *gauge) leave(host string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur[host]--
	g.total--
}

// slowServer serves a small body after hold, counting requests in g.
func slowServer(t testing.TB, g *gauge, hold time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.enter(r.Host)
		defer g.leave(r.Host)
		g.waitPeak(r.Host, 5*time.Second)
		time.Sleep(hold)
		fmt.Fprintf(w, "id\n%s\n", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLimits(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name          string
		perHost       int
		global        int
		wantHostPeak  int // reached and never exceeded, per host
		wantTotalPeak int // never exceeded in all
	}{
		{name: "per host", perHost: 3, global: 100, wantHostPeak: 3, wantTotalPeak: 6},
		{name: "global below two hosts' worth", perHost: 3, global: 4, wantHostPeak: 3, wantTotalPeak: 4},
		{name: "default per host is 64", wantHostPeak: 64, wantTotalPeak: 128},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGauge()
			if tt.global == 0 || tt.global >= 2*tt.wantHostPeak {
				g.want = tt.wantHostPeak // both hosts can be at their peak at once
			}
			srv := slowServer(t, g, 100*time.Millisecond)
			h := e.handler(t, fetch.Config{
				MaxPerHost: tt.perHost, MaxInFlight: tt.global,
				LookupHost: resolver(map[string]string{"a.test": "127.0.0.1", "b.test": "127.0.0.1"}),
			})
			const perHost = 80
			var wg sync.WaitGroup
			errs := make(chan error, 2*perHost)
			for n := range perHost {
				for _, host := range []string{"a.test", "b.test"} {
					wg.Go(func() {
						src := wire.Source{ID: fmt.Sprintf("%s-%d", host, n), URL: on(srv, host, fmt.Sprintf("/%d.csv", n))}
						errs <- h.Handle(context.Background(), msg(t, fmt.Sprintf("limits%d", i), src))
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			require.Len(t, g.starts, 2)
			for host, starts := range g.starts {
				require.Len(t, starts, perHost, host)
			}
			for host, peak := range g.peak {
				require.Equal(t, tt.wantHostPeak, peak, "concurrent requests to %s", host)
			}
			require.LessOrEqual(t, g.peakAll, tt.wantTotalPeak)
			require.Greater(t, g.peakAll, tt.wantHostPeak, "two hosts are limited separately")
		})
	}
}

func TestPerHostRate(t *testing.T) {
	e := newEnv(t)
	g := newGauge()
	srv := slowServer(t, g, 0)
	h := e.handler(t, fetch.Config{
		PerHostRate: 20, PerHostBurst: 2,
		LookupHost: resolver(map[string]string{"a.test": "127.0.0.1", "b.test": "127.0.0.1"}),
	})
	// 12 requests to a.test at 20/s with a burst of 2 take at least 0.5s;
	// b.test has its own budget, so its 2 requests start at once.
	var wg sync.WaitGroup
	start := time.Now()
	for n := range 12 {
		wg.Go(func() {
			src := wire.Source{ID: fmt.Sprintf("a-%d", n), URL: on(srv, "a.test", fmt.Sprintf("/%d.csv", n))}
			require.NoError(t, h.Handle(context.Background(), msg(t, "rate", src)))
		})
	}
	for n := range 2 {
		wg.Go(func() {
			src := wire.Source{ID: fmt.Sprintf("b-%d", n), URL: on(srv, "b.test", fmt.Sprintf("/%d.csv", n))}
			require.NoError(t, h.Handle(context.Background(), msg(t, "rate", src)))
		})
	}
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	a, b := g.starts[on(srv, "a.test", "")[7:]], g.starts[on(srv, "b.test", "")[7:]]
	require.Len(t, a, 12)
	require.Len(t, b, 2)
	require.GreaterOrEqual(t, a[11].Sub(start), 450*time.Millisecond, "12 requests at 20/s, burst 2")
	require.Less(t, a[11].Sub(start), 3*time.Second)
	// Five starts need the burst of 2 and 3 more tokens: 150ms.
	for i := 4; i < len(a); i++ {
		require.GreaterOrEqual(t, a[i].Sub(a[i-4]), 120*time.Millisecond, "5 requests within 120ms")
	}
	require.Less(t, b[1].Sub(start), 200*time.Millisecond, "another host is not slowed down")
}
