package fetch_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// BenchmarkPerHostLimit fetches from one host with 64 goroutines and a
// per-host limit of 8: the peak of concurrent requests the server saw is
// reported and must not pass the limit.
func BenchmarkPerHostLimit(b *testing.B) {
	e := newEnv(b)
	g := newGauge()
	srv := slowServer(b, g, 2*time.Millisecond)
	h := e.handler(b, fetch.Config{MaxPerHost: 8})
	var n atomic.Int64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			src := wire.Source{ID: fmt.Sprint(i), URL: fmt.Sprintf("%s/%d.csv", srv.URL, i)}
			if err := h.Handle(context.Background(), msg(b, "bench", src)); err != nil {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	g.mu.Lock()
	defer g.mu.Unlock()
	peak := 0
	for _, p := range g.peak {
		peak = max(peak, p)
	}
	b.ReportMetric(float64(peak), "peak-requests/host")
	if peak > 8 {
		b.Fatalf("%d requests at once to one host, limit 8", peak)
	}
}

// BenchmarkCache fetches the same URL for a new source id each time, without
// and with a cache TTL, and reports the bodies downloaded per fetch: the
// first fetch downloads, revalidations (304) and TTL hits do not.
func BenchmarkCache(b *testing.B) {
	for _, ttl := range []time.Duration{0, time.Hour} {
		b.Run(fmt.Sprintf("ttl=%s", ttl), func(b *testing.B) {
			e := newEnv(b)
			v := &validating{version: 1, etag: true}
			srv := serve(b, v)
			h := e.handler(b, fetch.Config{CacheTTL: ttl})
			b.ResetTimer()
			for i := range b.N {
				src := wire.Source{ID: fmt.Sprint(i), URL: srv.URL + "/data.csv"}
				if err := h.Handle(context.Background(), msg(b, "cache", src)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			full := 0
			for _, r := range v.seen() {
				if r.Get("If-None-Match") == "" {
					full++
				}
			}
			b.ReportMetric(float64(full)/float64(b.N), "downloads/op")
			b.ReportMetric(float64(len(v.seen()))/float64(b.N), "requests/op")
		})
	}
}
