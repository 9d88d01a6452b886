package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestAddressPolicy(t *testing.T) {
	e := newEnv(t)
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/a.csv", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("id\n1\n"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/to-loopback", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, on(srv, "127.0.0.1", "/a.csv"), http.StatusFound)
	})
	mux.HandleFunc("/to-metadata", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	mux.HandleFunc("/to-rebound", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, on(srv, "evil.test", "/a.csv"), http.StatusFound)
	})
	names := resolver(map[string]string{
		"good.test":   "127.0.0.1",
		"evil.test":   "127.0.0.1",
		"mixed.test":  "169.254.169.254,127.0.0.1",
		"meta.test":   "169.254.169.254",
		"v6meta.test": "fd00:ec2::254",
	})
	var lookups atomic.Int64
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		return names(ctx, host)
	}

	tests := []struct {
		name     string
		url      string
		cfg      fetch.Config
		wantErr  string // empty: the fetch succeeds
		wantHits int64  // requests the server saw
		noLookup bool   // refused before any DNS lookup
	}{
		{name: "metadata address", url: "http://169.254.169.254/latest/meta-data/", wantErr: "169.254.169.254 is a link-local", noLookup: true},
		{name: "metadata address even with allow private", url: "http://169.254.169.254/latest/meta-data/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "169.254.169.254", noLookup: true},
		{name: "link-local", url: "http://169.254.1.1:8080/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "link-local", noLookup: true},
		{name: "IPv6 link-local", url: "http://[fe80::1]/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "link-local", noLookup: true},
		{name: "AWS IPv6 metadata", url: "http://[fd00:ec2::254]/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "metadata", noLookup: true},
		{name: "IPv4-mapped metadata", url: "http://[::ffff:169.254.169.254]/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "metadata", noLookup: true},
		{name: "NAT64 metadata", url: "http://[64:ff9b::a9fe:a9fe]/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "metadata", noLookup: true},
		{name: "metadata host name", url: "http://metadata.google.internal/computeMetadata/v1/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "cloud metadata service", noLookup: true},
		{name: "name resolving to metadata", url: "http://meta.test/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "meta.test (169.254.169.254)"},
		{name: "name resolving to IPv6 metadata", url: "http://v6meta.test/", cfg: fetch.Config{AllowPrivate: true}, wantErr: "v6meta.test (fd00:ec2::254)"},
		{name: "unspecified address", url: on(srv, "0.0.0.0", "/a.csv"), cfg: fetch.Config{AllowPrivate: true}, wantErr: "0.0.0.0", noLookup: true},
		{name: "loopback refused", url: srv.URL + "/a.csv", wantErr: "127.0.0.1 is a loopback address (allow it with --allow-private", noLookup: true},
		{name: "private refused", url: "http://10.1.2.3/a.csv", wantErr: "10.1.2.3 is a private address", noLookup: true},
		{name: "IPv6 unique local refused", url: "http://[fd12::1]/a.csv", wantErr: "private address", noLookup: true},
		{name: "loopback allowed", url: srv.URL + "/a.csv", cfg: fetch.Config{AllowPrivate: true}, wantHits: 1},
		{name: "loopback address allow-listed", url: srv.URL + "/a.csv", cfg: fetch.Config{AllowHosts: []string{"127.0.0.1"}}, wantHits: 1},
		{name: "loopback network allow-listed", url: srv.URL + "/a.csv", cfg: fetch.Config{AllowHosts: []string{"127.0.0.0/8"}}, wantHits: 1},
		{name: "name resolving to loopback", url: on(srv, "evil.test", "/a.csv"), wantErr: "evil.test (127.0.0.1) is a loopback address"},
		{name: "allow-listed name", url: on(srv, "good.test", "/a.csv"), cfg: fetch.Config{AllowHosts: []string{"good.test"}}, wantHits: 1},
		{name: "allow-listed sub-domain", url: on(srv, "good.test", "/a.csv"), cfg: fetch.Config{AllowHosts: []string{"*.test"}}, wantHits: 1},
		{name: "allow-listed name does not allow others", url: on(srv, "evil.test", "/a.csv"), cfg: fetch.Config{AllowHosts: []string{"good.test"}}, wantErr: "evil.test (127.0.0.1)"},
		{name: "only allowed addresses of a name are dialled", url: on(srv, "mixed.test", "/a.csv"), cfg: fetch.Config{AllowPrivate: true}, wantHits: 1},
		{name: "redirect from an allowed host to loopback", url: on(srv, "good.test", "/to-loopback"), cfg: fetch.Config{AllowHosts: []string{"good.test"}}, wantErr: "127.0.0.1 is a loopback address", wantHits: 1},
		{name: "redirect to metadata", url: on(srv, "good.test", "/to-metadata"), cfg: fetch.Config{AllowHosts: []string{"good.test"}}, wantErr: "169.254.169.254", wantHits: 1},
		{name: "redirect to a name resolving to loopback", url: on(srv, "good.test", "/to-rebound"), cfg: fetch.Config{AllowHosts: []string{"good.test"}}, wantErr: "evil.test (127.0.0.1)", wantHits: 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			lookups.Store(0)
			cfg := tt.cfg
			cfg.LookupHost = lookup
			h := e.strictHandler(t, cfg)
			dataset := fmt.Sprintf("policy%d", i)
			err := h.Handle(context.Background(), msg(t, dataset, wire.Source{ID: fmt.Sprintf("p%d", i), URL: tt.url}))
			require.Equal(t, tt.wantHits, hits.Load(), "requests the server saw")
			_, published := e.fetched(t, dataset)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.True(t, published)
				return
			}
			require.Error(t, err)
			require.ErrorIs(t, err, fetch.ErrRefused)
			require.True(t, runner.IsPermanent(err), "a refusal is permanent: %v", err)
			require.ErrorContains(t, err, tt.wantErr)
			require.False(t, published)
			if tt.noLookup {
				require.Zero(t, lookups.Load(), "refused before any lookup")
			}
		})
	}
}

func TestAllowHostsValidate(t *testing.T) {
	tests := []struct {
		allow   []string
		wantErr string
	}{
		{allow: []string{"example.internal", "*.corp.example", "10.0.0.0/8", "192.168.1.7", "::1", "[fd00::1]"}},
		{allow: []string{"169.254.0.0/16"}, wantErr: "always refused"},
		{allow: []string{"169.254.169.254"}, wantErr: "always refused"},
		{allow: []string{"fd00:ec2::254"}, wantErr: "always refused"},
		{allow: []string{"0.0.0.0/0"}, wantErr: "always refused"},
		{allow: []string{"http://example.com/"}, wantErr: "neither a host name"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.allow), func(t *testing.T) {
			err := fetch.Config{AllowHosts: tt.allow}.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.False(t, errors.Is(err, fetch.ErrRefused))
		})
	}
}
