package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a Server.
const (
	// maxConns is the number of connections a Server serves at once; more
	// wait in the listen queue.
	maxConns = 512
	// maxCacheBytes bounds the bodies a Server keeps; past it, a body is
	// generated again for every request.
	maxCacheBytes = 512 << 20
	// maxSources and maxRows bound what a Config may ask a Server for.
	maxSources = 1_000_000
	maxRows    = 10_000_000
)

// Server serves the benchmark's sources on 127.0.0.1: GET /src/<n>.csv for
// 0 <= n < Sources returns n's Rows CSV records after Latency. Bodies are
// generated deterministically, once per source while they fit the cache.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL string

	cfg      Config
	srv      *serving
	cache    []atomic.Pointer[[]byte]
	cached   atomic.Int64 // bytes in cache
	requests atomic.Int64
}

// StartServer listens on a free loopback port and serves cfg.Sources sources
// of cfg.Rows rows with cfg.Latency until Close. Requests see ctx's values
// and end when it does. Only Sources, Rows and Latency of cfg are used.
func StartServer(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Sources > maxSources || cfg.Rows > maxRows {
		return nil, fmt.Errorf("bench: server: at most %d sources of %d rows", maxSources, maxRows)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: server: %w", err)
	}
	s := &Server{
		URL:   "http://" + ln.Addr().String(),
		cfg:   cfg,
		cache: make([]atomic.Pointer[[]byte], cfg.Sources),
	}
	s.srv = serve(&http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}, newLimitListener(ln, maxConns))
	return s, nil
}

// Close stops the server, closing every connection, and waits for it.
func (s *Server) Close() error { return s.srv.Close() }

// Requests returns how many source requests the server has answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Warm generates and caches the bodies of sources 0 to n-1, so that no
// workload timed after it pays for their generation.
func (s *Server) Warm(n int) {
	for i := range min(n, len(s.cache)) {
		s.body(i)
	}
}

// ServeHTTP answers GET and HEAD /src/<n>.csv.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/src/")
	name, csv := strings.CutSuffix(name, ".csv")
	n, err := strconv.Atoi(name)
	if !ok || !csv || err != nil || n < 0 || n >= len(s.cache) || strconv.Itoa(n) != name {
		http.NotFound(w, r)
		return
	}
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	body := s.body(n)
	s.requests.Add(1)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// body returns source n's body, from the cache when it is there.
func (s *Server) body(n int) []byte {
	if b := s.cache[n].Load(); b != nil {
		return *b
	}
	b := AppendSource(nil, n, s.cfg.Rows)
	if s.cached.Add(int64(len(b))) <= maxCacheBytes {
		s.cache[n].Store(&b)
	} else {
		s.cached.Add(-int64(len(b)))
	}
	return b
}

// AppendSource appends the CSV body of source n of rows records to dst: a
// header naming Schema's columns, then rows id n*rows+i for i < rows. ids are
// unique across sources; value always has a fraction, so it parses as a
// float; text holds a comma and quotes, so it is quoted.
func AppendSource(dst []byte, n, rows int) []byte {
	dst = append(dst, "id,value,flag,name,text\n"...)
	for i := range rows {
		id := n*rows + i
		dst = strconv.AppendInt(dst, int64(id), 10)
		dst = append(dst, ',')
		dst = strconv.AppendFloat(dst, float64(id%100_003)/7+0.0625, 'f', 4, 64)
		dst = append(dst, ',')
		dst = strconv.AppendBool(dst, id%3 == 0)
		dst = append(dst, ",user_"...)
		dst = strconv.AppendInt(dst, int64(id%9973), 36)
		dst = append(dst, `,"row `...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, ` of source `...)
		dst = strconv.AppendInt(dst, int64(n), 10)
		dst = append(dst, `, ""quoted"" text"`...)
		dst = append(dst, '\n')
	}
	return dst
}

// limitListener accepts at most n connections at a time: Accept waits for
// one to close.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its listener slot back once, when it is closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
