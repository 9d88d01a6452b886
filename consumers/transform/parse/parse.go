package parse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// The formats Parse reads.
const (
	FormatCSV   = "csv"
	FormatTSV   = "tsv"
	FormatJSONL = "jsonl"
	// FormatParquet is a Parquet file, told by its magic bytes whatever
	// the hint says.
	FormatParquet = "parquet"
	// FormatJSON is a JSON array of objects, one record each; a body in
	// this format that does not start with '[' is read as JSON lines.
	FormatJSON = "json"
)

const (
	defaultMaxBatchBytes = 512 << 10
	defaultMaxBatchRows  = 5000
	// maxLineBytes bounds one input line (JSON lines), one record (CSV) or
	// one array element (JSON), so that a body without newlines can not
	// make the parser hold all of it.
	maxLineBytes = 16 << 20
	ReadBufSize  = 64 << 10
	sniffBytes   = 4 << 10
	// maxListedSkips bounds the skipped rows Parse lists in its batches.
	maxListedSkips = 100
)

var (
	errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLineBytes)
	errNotObject   = errors.New("not a json object")
)

// ParseOptions shape a parse.
type ParseOptions struct {
	// Format is "csv", "tsv", "jsonl" ("ndjson" and "jsonlines" too) or
	// "json" (an array of objects; JSON lines when the body does not start
	// with '['). Empty means sniff: a JSON array when the first non-space
	// byte is '[', JSON lines when it is '{' (or JSON objects spread over
	// lines, when the first lines hold no whole object), else tsv when the
	// first line holds more tabs than commas, else csv.
	Format string
	// Records is the path of keys to the array of records inside a JSON
	// document, such as "data" or "data.items" (see wire.RecordsPath), for
	// an API that wraps its records: {"data": [{...}, ...], "next": ...}.
	// The rest of the document is skipped. It needs Format "json" or empty.
	Records string
	// MaxBatchBytes bounds the raw bytes of the values in a batch
	// (approximately: a batch is cut after the record that reaches it);
	// 0 or less means 512 KiB.
	MaxBatchBytes int
	// MaxBatchRows bounds the rows of a batch; 0 or less means 5000.
	MaxBatchRows int
	// Strict fails the parse with a *ParseError at the first malformed
	// row. By default a malformed row is skipped and listed in
	// Batch.Skipped.
	Strict bool
	// MaxDecompressedBytes caps the decompressed size of compressed input;
	// 0 or less means 8 GiB.
	MaxDecompressedBytes int64
	// MaxDecompressionRatio refuses compressed input that, past 64 MiB of
	// output, expands to more than this many times the compressed bytes
	// read; 0 or less means 200.
	MaxDecompressionRatio int
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
	// SkippedRows counts the malformed rows skipped since the previous
	// batch; Skipped lists them, up to 100 over the whole input.
	SkippedRows int
	Skipped     []wire.SkippedRow
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
// records, or none (Rows == 0) when the input has no records.
//
// gzip and zstd input is recognised by its magic bytes and decompressed
// transparently, within the limits of MaxDecompressedBytes and
// MaxDecompressionRatio (a *ParseError wrapping ErrDecompressionLimit
// otherwise). Text is read as UTF-8, a leading byte order mark dropped; as
// UTF-16 when it starts with a UTF-16 byte order mark; and as Windows-1252
// (which covers Latin-1) when its first 64 KiB are not valid UTF-8 and hold
// no NUL byte. Any invalid UTF-8 left is replaced with U+FFFD: no value or
// column name Parse returns holds invalid UTF-8.
//
// CSV and TSV input starts with a header row naming the columns; an empty
// name becomes "col_<i>" and a repeated one "<name>_<i>", i being its 0-based
// position. Every record must have as many fields; an empty field is null.
// JSON lines input holds one object per line (blank lines are skipped), a
// JSON array one object per element; the keys are the columns of a batch in
// first-seen order, a key a row lacks is null there, and a nested object or
// array is kept as its compact JSON text. A line or element may be up to
// 16 MiB long (the handler then needs a record's batch to encode in 1 MiB,
// the message size limit).
//
// Each batch types each of its columns from the values it holds: int when
// they all are integers that fit int64 (in CSV, written canonically: no '+',
// no leading zeros, so "007" is a string), float when they all are numbers
// (in CSV, decimal ones: no NaN, Inf, hex or '_'), bool when they all are
// booleans (in CSV, "true" or "false" in any case), timestamp when they all
// are RFC 3339 / ISO 8601 dates or date-times (see Timestamp), and
// string otherwise, a JSON number or boolean then keeping its JSON text. A
// column of nulls only is a string column. Nulls is set only on a column
// with a null.
//
// A malformed row (a CSV record with the wrong number of fields or bad
// quoting, a JSON line or element that is not a valid object) is skipped and
// reported in the next batch's Skipped, unless opts.Strict. What can not be
// skipped fails the parse with a *ParseError naming the line: a bad header,
// an overlong record, corrupt compressed data, a decompression limit, a
// JSON array whose brackets do not balance. An error reading r, an error
// from emit and the context's error are returned wrapped, after the line.
// Parse stops at the first error without the final emit. ctx is checked
// before every emit. Parse returns the number of rows parsed.
func Parse(ctx context.Context, r io.Reader, opts ParseOptions, emit func(*Batch) error) (int64, error) {
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = defaultMaxBatchBytes
	}
	if opts.MaxBatchRows <= 0 {
		opts.MaxBatchRows = defaultMaxBatchRows
	}
	if opts.MaxDecompressedBytes <= 0 {
		opts.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if opts.MaxDecompressionRatio <= 0 {
		opts.MaxDecompressionRatio = DefaultMaxDecompressionRatio
	}
	format := wire.SourceFormat(opts.Format)
	if format == "" && strings.TrimSpace(opts.Format) != "" {
		return 0, &ParseError{Err: fmt.Errorf("unsupported format %q", opts.Format)}
	}
	path, err := wire.RecordsPath(opts.Records)
	if err != nil {
		return 0, &ParseError{Err: err}
	}
	if path != nil && format != "" && format != FormatJSON {
		return 0, &ParseError{Err: fmt.Errorf("records path %q needs a JSON document, not %s", opts.Records, format)}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("parse: %w", err)
	}

	in, err := openInput(r, opts)
	if err != nil {
		return 0, err
	}
	defer in.close()
	b := &builder{ctx: ctx, opts: opts, emit: emit, capHint: min(opts.MaxBatchRows, 256)}
	if in.parquet != nil {
		if format != "" && format != FormatParquet {
			return 0, &ParseError{Line: 1, Err: fmt.Errorf("the body is a Parquet file, but the source's format says %s: give no format, or parquet", format)}
		}
		err := parseParquet(in, b)
		return b.total, err
	}
	if format == FormatParquet {
		return 0, &ParseError{Line: 1, Err: fmt.Errorf("%w: the source's format says parquet, but the body does not start as a Parquet file does (PAR1)", ErrNotText)}
	}
	if kind := markup(in.buf); kind != "" {
		return 0, &ParseError{Line: 1, Err: fmt.Errorf("the body is %s, not CSV, TSV or JSON: is the URL a web page about the data rather than the data?", kind)}
	}
	switch {
	case path != nil:
		format = FormatJSON
	case format == "":
		format = sniff(in.buf)
	case format == FormatJSON:
		if f := sniff(in.buf); f != FormatJSON {
			format = FormatJSONL
		}
	}
	stream := false // JSON objects spread over lines
	if format == FormatJSONL {
		head, _ := in.buf.Peek(ReadBufSize)
		stream = !isJSONLines(head)
	}
	switch format {
	case FormatJSON:
		if path != nil {
			err = parseJSONAt(in, b, path)
		} else {
			err = parseJSONArray(in, b)
		}
	case FormatJSONL:
		if stream {
			err = parseJSONStream(in, b)
		} else {
			err = parseJSONL(in, b)
		}
	case FormatTSV:
		err = parseCSV(in, b, '\t')
	default:
		err = parseCSV(in, b, ',')
	}
	return b.total, err
}

// DetectFormat guesses a body's format from a format hint, the extension of
// the URL's path (.csv, .tsv, .tab, .jsonl, .ndjson, .json, each also
// followed by .gz, .gzip, .zst or .zstd) and the content type, in that
// order. It returns "csv", "tsv", "jsonl", "json" or "" when none of them
// says; Parse then sniffs the body. Compression is not a format: Parse
// recognises it by its magic bytes whatever the name says.
func DetectFormat(hint, rawURL, contentType string) string {
	if f := wire.SourceFormat(hint); f != "" {
		return f
	}
	if f := formatFromURL(rawURL); f != "" {
		return f
	}
	return formatFromContentType(contentType)
}

// normalizeFormat maps a format name to one of the Format constants, or ""
// when it is not one Parse reads.

func formatFromURL(rawURL string) string {
	p := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		p = u.Path
	} else if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = strings.ToLower(p)
	for _, ext := range []string{".gz", ".gzip", ".zst", ".zstd"} {
		p = strings.TrimSuffix(p, ext)
	}
	switch path.Ext(p) {
	case ".csv":
		return FormatCSV
	case ".tsv", ".tab":
		return FormatTSV
	case ".jsonl", ".ndjson":
		return FormatJSONL
	case ".json":
		return FormatJSON
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
		"application/x-jsonlines", "application/jsonlines":
		return FormatJSONL
	case "application/json", "text/json":
		return FormatJSON
	}
	return ""
}

// markup names the kind of document the buffered start of the input is
// when it is an HTML page or XML — what a URL to a page about a dataset
// (a repository's file view, a login page, an error page) gives — or "".
// Whatever the format hint says, such a body is not data trainfeed reads.
func markup(br *bufio.Reader) string {
	head, _ := br.Peek(256)
	rest := strings.ToLower(strings.TrimLeft(string(head), " \t\r\n"))
	switch {
	case strings.HasPrefix(rest, "<!doctype html"), strings.HasPrefix(rest, "<html"):
		return "an HTML page"
	case strings.HasPrefix(rest, "<?xml"):
		return "XML"
	}
	return ""
}

// sniff guesses the format of the buffered start of the input.
func sniff(br *bufio.Reader) string {
	head, _ := br.Peek(sniffBytes)
	rest := strings.TrimLeft(string(head), " \t\r\n")
	switch {
	case strings.HasPrefix(rest, "["):
		return FormatJSON
	case strings.HasPrefix(rest, "{"):
		return FormatJSONL
	}
	first, _, _ := strings.Cut(rest, "\n")
	if strings.Count(first, "\t") > strings.Count(first, ",") {
		return FormatTSV
	}
	return FormatCSV
}

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

	skippedRows int               // since the last batch
	skipped     []wire.SkippedRow // listed since the last batch
	listed      int               // listed in all
}

// skip records that the row on line is malformed, or fails the parse with a
// *ParseError when the options are strict.
func (b *builder) skip(line int64, err error) error {
	if b.opts.Strict {
		return &ParseError{Line: line, Err: err}
	}
	b.skippedRows++
	if b.listed < maxListedSkips {
		b.listed++
		b.skipped = append(b.skipped, wire.SkippedRow{Line: line, Reason: err.Error()})
	}
	return nil
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

		SkippedRows: b.skippedRows,
		Skipped:     b.skipped,
	}
	b.skippedRows, b.skipped = 0, nil
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
