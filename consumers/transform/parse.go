package transform

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// The formats Parse reads.
const (
	FormatCSV   = "csv"
	FormatTSV   = "tsv"
	FormatJSONL = "jsonl"
)

const (
	defaultMaxBatchBytes = 256 << 10
	defaultMaxBatchRows  = 5000
	// maxLineBytes bounds one input line (JSON lines) or one record (CSV), so
	// that a body without newlines can not make the parser hold all of it.
	maxLineBytes = 16 << 20
	readBufSize  = 64 << 10
	sniffBytes   = 4 << 10
)

var (
	errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLineBytes)
	errNotObject   = errors.New("not a json object")
)

// ParseOptions bound the batches a parser emits.
type ParseOptions struct {
	// Format is "csv", "tsv" or "jsonl" ("ndjson" and "json" mean jsonl).
	// Empty means sniff: jsonl when the first non-space byte is '{', else
	// tsv when the first line holds more tabs than commas, else csv.
	Format string
	// MaxBatchBytes bounds the raw bytes of the values in a batch
	// (approximately: a batch is cut after the record that reaches it);
	// 0 or less means 256 KiB.
	MaxBatchBytes int
	// MaxBatchRows bounds the rows of a batch; 0 or less means 5000.
	MaxBatchRows int
}

// Batch is one run of typed columns. Every column holds Rows values. The
// Batch and its slices belong to the emit callback: Parse does not touch
// them after emit returns.
type Batch struct {
	// Columns are the batch's columns in first-seen order.
	Columns []wire.Column
	// Rows is the number of records in the batch.
	Rows int
	// Bytes is the approximate raw size of the batch's values; a null
	// counts as one byte.
	Bytes int
	// FirstLine and LastLine are the 1-based input lines on which the
	// batch's first and last records start; both are 0 when Rows is 0.
	FirstLine, LastLine int64
	// Last is set on the final batch of the input, which Parse emits
	// exactly once.
	Last bool
}

// ParseError reports malformed input: retrying the same body fails the same
// way, so callers treat it as permanent. Errors reading the underlying
// reader are not ParseErrors.
type ParseError struct {
	// Line is the 1-based input line of the error, or 0 when the error is
	// not on a line (a bad gzip header, an unsupported format).
	Line int64
	// Err says what is wrong.
	Err error
}

// Error returns "line <n>: <err>".
func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return e.Err.Error()
	}
	return "line " + strconv.FormatInt(e.Line, 10) + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }

// Parse streams records from r and calls emit for every full batch and for
// the final batch (the one with Last set) exactly once at the end, so emit is
// called at least once when Parse succeeds. The final batch holds the last
// records, or none (Rows == 0) when the input has no records. gzip input is
// detected by its magic bytes and decompressed transparently; a leading UTF-8
// byte order mark is dropped.
//
// CSV and TSV input starts with a header row naming the columns; an empty
// name becomes "col_<i>" and a repeated one "<name>_<i>", i being its 0-based
// position. Every record must have as many fields; an empty field is null.
// JSON lines input holds one object per line (blank lines are skipped); its
// keys are the columns of a batch in first-seen order, a key a row lacks is
// null there, and a nested object or array is kept as its compact JSON
// text. A record or line may be up to 16 MiB long.
//
// Each batch types each of its columns from the values it holds: int when
// they all are integers that fit int64 (in CSV, written canonically: no '+',
// no leading zeros, so "007" is a string), float when they all are numbers
// (in CSV, decimal ones: no NaN, Inf, hex or '_'), bool when they all are
// booleans (in CSV, "true" or "false" in any case), and string otherwise, a
// JSON number or boolean then keeping its JSON text. A column of nulls only
// is a string column. Nulls is set only on a column with a null. Invalid
// UTF-8 is replaced with U+FFFD.
//
// Parse returns the number of rows parsed. A malformed input fails with a
// *ParseError naming the line; an error reading r, an error from emit and
// the context's error are returned wrapped, after the line. Parse stops at
// the first error without the final emit. ctx is checked before every emit.
func Parse(ctx context.Context, r io.Reader, opts ParseOptions, emit func(*Batch) error) (int64, error) {
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = defaultMaxBatchBytes
	}
	if opts.MaxBatchRows <= 0 {
		opts.MaxBatchRows = defaultMaxBatchRows
	}
	format := normalizeFormat(opts.Format)
	if format == "" && strings.TrimSpace(opts.Format) != "" {
		return 0, &ParseError{Err: fmt.Errorf("unsupported format %q", opts.Format)}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("parse: %w", err)
	}

	in, err := openInput(r)
	if err != nil {
		return 0, err
	}
	if format == "" {
		format = sniff(in.buf)
	}
	b := &builder{ctx: ctx, opts: opts, emit: emit, capHint: min(opts.MaxBatchRows, 256)}
	switch format {
	case FormatJSONL:
		err = parseJSONL(in, b)
	case FormatTSV:
		err = parseCSV(in, b, '\t')
	default:
		err = parseCSV(in, b, ',')
	}
	return b.total, err
}

// DetectFormat guesses a body's format from a format hint, the extension of
// the URL's path (.csv, .tsv, .jsonl, .ndjson, .json, each also with .gz)
// and the content type, in that order. It returns "csv", "tsv", "jsonl" or
// "" when none of them says; Parse then sniffs the body.
func DetectFormat(hint, rawURL, contentType string) string {
	if f := normalizeFormat(hint); f != "" {
		return f
	}
	if f := formatFromURL(rawURL); f != "" {
		return f
	}
	return formatFromContentType(contentType)
}

// normalizeFormat maps a format name to one of the Format constants, or ""
// when it is not one Parse reads.
func normalizeFormat(name string) string {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "csv":
		return FormatCSV
	case "tsv", "tab":
		return FormatTSV
	case "jsonl", "ndjson", "json", "jsonlines":
		return FormatJSONL
	}
	return ""
}

func formatFromURL(rawURL string) string {
	p := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		p = u.Path
	} else if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = strings.ToLower(p)
	p = strings.TrimSuffix(p, ".gz")
	switch path.Ext(p) {
	case ".csv":
		return FormatCSV
	case ".tsv", ".tab":
		return FormatTSV
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL
	}
	return ""
}

func formatFromContentType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	switch mt {
	case "text/csv", "application/csv":
		return FormatCSV
	case "text/tab-separated-values":
		return FormatTSV
	case "application/x-ndjson", "application/ndjson", "application/jsonl",
		"application/x-jsonlines", "application/jsonlines", "application/json":
		return FormatJSONL
	}
	return ""
}

// input is the decoded byte stream a format parser reads, with the readers
// it is made of so that errors can be blamed on the right one.
type input struct {
	src *sourceReader
	lim *limitReader
	buf *bufio.Reader
}

// openInput layers gzip detection, the record size limit and a buffer over r
// and drops a byte order mark.
func openInput(r io.Reader) (*input, error) {
	in := &input{src: &sourceReader{r: r}}
	raw := bufio.NewReaderSize(in.src, readBufSize)
	var dec io.Reader = raw
	if magic, _ := raw.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, in.fail(0, fmt.Errorf("gzip: %w", err))
		}
		dec = zr
	}
	in.lim = &limitReader{r: dec, max: maxLineBytes + readBufSize}
	in.buf = bufio.NewReaderSize(in.lim, readBufSize)
	if bom, _ := in.buf.Peek(3); len(bom) == 3 && bom[0] == 0xEF && bom[1] == 0xBB && bom[2] == 0xBF {
		_, _ = in.buf.Discard(3)
		// All the limit reader has read is buffered: look again without
		// the mark.
		rest, _ := in.buf.Peek(in.buf.Buffered())
		in.lim.nonASCII = !isASCII(rest)
	}
	return in, nil
}

// fail turns an error met on line into the error Parse returns: a read error
// of the source as is, anything else (bad gzip data, an overlong line, bad
// syntax) as a *ParseError.
func (in *input) fail(line int64, err error) error {
	if in.src.err != nil {
		return fmt.Errorf("line %d: read: %w", line, in.src.err)
	}
	if in.lim != nil && in.lim.exceeded() {
		return &ParseError{Line: line, Err: errLineTooLong}
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe
	}
	return &ParseError{Line: line, Err: err}
}

// sniff guesses the format of the buffered start of the input.
func sniff(br *bufio.Reader) string {
	head, _ := br.Peek(sniffBytes)
	rest := strings.TrimLeft(string(head), " \t\r\n")
	if strings.HasPrefix(rest, "{") {
		return FormatJSONL
	}
	first, _, _ := strings.Cut(rest, "\n")
	if strings.Count(first, "\t") > strings.Count(first, ",") {
		return FormatTSV
	}
	return FormatCSV
}

// sourceReader remembers the first error of the caller's reader other than
// io.EOF: such an error is not the input's fault.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// limitReader fails once more than max bytes have been read since the last
// reset. Resetting it after every record bounds a record to about
// max - readBufSize bytes, as the buffer above it reads at most that far
// ahead. It also notes whether any byte read is not ASCII: until one is,
// values need no UTF-8 check.
type limitReader struct {
	r        io.Reader
	n        int64
	max      int64
	nonASCII bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, errLineTooLong
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if !l.nonASCII && !isASCII(p[:n]) {
		l.nonASCII = true
	}
	return n, err
}

// isASCII reports whether b holds only bytes below 0x80.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (l *limitReader) reset() { l.n = 0 }

func (l *limitReader) exceeded() bool { return l.n > l.max }

// builder collects the rows of the current batch in columns and emits them.
type builder struct {
	ctx     context.Context
	opts    ParseOptions
	emit    func(*Batch) error
	cols    []*column
	rows    int
	bytes   int
	first   int64
	last    int64
	total   int64
	capHint int
}

// full reports whether the current batch must be emitted before another row
// is added.
func (b *builder) full() bool {
	return b.rows >= b.opts.MaxBatchRows || b.bytes >= b.opts.MaxBatchBytes
}

// startRow records that a row starting on line begins.
func (b *builder) startRow(line int64) {
	if b.rows == 0 {
		b.first = line
	}
	b.last = line
}

// endRow counts the row just added and its raw size.
func (b *builder) endRow(size int) {
	b.rows++
	b.total++
	b.bytes += size
}

// flush emits the current batch and resets the columns for the next one.
func (b *builder) flush(last bool) error {
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("line %d: %w", b.last, err)
	}
	batch := &Batch{
		Columns:   make([]wire.Column, len(b.cols)),
		Rows:      b.rows,
		Bytes:     b.bytes,
		FirstLine: b.first,
		LastLine:  b.last,
		Last:      last,
	}
	if b.rows > 0 {
		b.capHint = b.rows
	}
	for i, c := range b.cols {
		batch.Columns[i] = c.finish(b.capHint)
	}
	b.rows, b.bytes, b.first, b.last = 0, 0, 0, 0
	if err := b.emit(batch); err != nil {
		return fmt.Errorf("emit lines %d-%d: %w", batch.FirstLine, batch.LastLine, err)
	}
	return nil
}
