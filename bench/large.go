package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// LargePath is the path of the one source a LargeServer serves.
const LargePath = "/large.csv"

// largeBlockRows is the number of rows of the block a LargeServer repeats.
const largeBlockRows = 16_384

// LargeServer serves one large CSV source (W2) on 127.0.0.1 at
// URL+LargePath: Schema's header, then a block of largeBlockRows rows (about
// 1 MiB) written again and again until the body holds at least the size
// asked for. The body is streamed from the one block, never held whole, so
// the server costs a memcpy per byte and does not compete with what it
// feeds; ids repeat from block to block.
type LargeServer struct {
	// URL is the server's base URL, http://127.0.0.1:<port>; the source is
	// URL + LargePath.
	URL string
	// Rows and Bytes are the records and bytes of the body.
	Rows, Bytes int64

	header, block []byte
	blocks        int64
	srv           *serving
}

// StartLargeServer serves a source of at least size bytes until Close.
func StartLargeServer(ctx context.Context, size int64) (*LargeServer, error) {
	if size < 1 {
		return nil, fmt.Errorf("bench: large source size %d must be positive", size)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: large server: %w", err)
	}
	src := AppendSource(nil, 0, largeBlockRows)
	header := []byte("id,value,flag,name,text\n")
	s := &LargeServer{
		URL:    "http://" + ln.Addr().String(),
		header: header,
		block:  src[len(header):],
	}
	s.blocks = max(1, (size-int64(len(header))+int64(len(s.block))-1)/int64(len(s.block)))
	s.Rows = s.blocks * largeBlockRows
	s.Bytes = int64(len(header)) + s.blocks*int64(len(s.block))
	s.srv = serve(&http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}, ln)
	return s, nil
}

// Close stops the server, closing every connection, and waits for it.
func (s *LargeServer) Close() error { return s.srv.Close() }

// ServeHTTP answers GET and HEAD LargePath.
func (s *LargeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != LargePath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Length", strconv.FormatInt(s.Bytes, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodGet {
		return
	}
	if _, err := w.Write(s.header); err != nil {
		return
	}
	for range s.blocks {
		if _, err := w.Write(s.block); err != nil {
			return // the client went away
		}
	}
}

// RawLoop is W2's baseline: one GET of url streamed through parse.Parse
// (the transform stage's default options) into chunk files of
// chunkRecords records of format in dir, written as the combine stage
// writes them (temp file, fsync, rename, folder fsync), all in one
// goroutine chain with no broker.
func RawLoop(ctx context.Context, url, dir string, format chunk.Format, chunkRecords int) (Result, error) {
	if format == "" {
		format = chunk.Parquet
	}
	if chunkRecords < 1 {
		chunkRecords = DefaultChunkRecords
	}
	start := time.Now()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{}, fmt.Errorf("raw loop: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("raw loop: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("raw loop: get %s: %s", url, resp.Status)
	}
	tc := transform.DefaultConfig()
	opts := parse.ParseOptions{
		Format:        parse.DetectFormat("", url, resp.Header.Get("Content-Type")),
		MaxBatchBytes: tc.MaxBatchBytes,
		MaxBatchRows:  tc.MaxBatchRows,
	}
	ck := &chunker{dir: dir, format: format, size: chunkRecords, durable: true}
	_, err = parse.Parse(ctx, bufio.NewReaderSize(resp.Body, 256<<10), opts, func(b *parse.Batch) error {
		return ck.add(batchOf(b, url))
	})
	if err == nil {
		err = ck.flush()
	}
	if err == nil && len(ck.files) > 0 {
		err = ck.sync()
	}
	if err != nil {
		return Result{}, fmt.Errorf("raw loop: %w", err)
	}
	return Result{Elapsed: time.Since(start), Records: ck.records, Files: ck.files}, nil
}

// batchOf is b as a record batch of source url.
func batchOf(b *parse.Batch, url string) *wire.RecordBatch {
	return &wire.RecordBatch{SourceID: "large", URL: url, Last: b.Last, Rows: b.Rows, Columns: b.Columns}
}
