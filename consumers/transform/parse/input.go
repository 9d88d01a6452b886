package parse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Decompression limits.
const (
	// DefaultMaxDecompressedBytes is the default cap on the decompressed
	// size of one body.
	DefaultMaxDecompressedBytes = 8 << 30
	// DefaultMaxDecompressionRatio is the default cap on how many times its
	// compressed size a body may expand to.
	DefaultMaxDecompressionRatio = 200
	// zstdMaxWindow bounds the memory a zstd frame may ask for. The zstd
	// command uses at most 8 MiB below --long; --long=27 uses 128 MiB.
	zstdMaxWindow = 128 << 20
)

// ratioFloor is the decompressed size below which the ratio is not checked:
// small, very regular files compress extremely well. A variable for tests.
var ratioFloor int64 = 64 << 20

// ErrDecompressionLimit reports a compressed body that expands past the
// size or ratio limits: a decompression bomb, or a body too large to take.
var ErrDecompressionLimit = errors.New("decompression limit exceeded")

// Encodings Parse reads text in, as Encoding names them.
const (
	encodingUTF8    = "utf-8"
	encodingUTF16   = "utf-16"
	encodingWin1252 = "windows-1252"
)

// input is the decoded byte stream a format parser reads, with the readers
// it is made of so that errors can be blamed on the right one.
type input struct {
	src   *sourceReader
	guard *guardReader // nil for uncompressed input
	lim   *limitReader
	buf   *bufio.Reader
	// compression is "gzip", "zstd" or "".
	compression string
	// encoding is the text encoding the input was decoded from.
	encoding string
	// parquet is the decompressed body when it is a Parquet file, which
	// is read as such instead of as text (buf is then nil).
	parquet io.Reader
	closers []func()
}

// ErrNotText marks a body that is binary, not a text table: it fails its
// source instead of becoming rows of garbage.
var ErrNotText = errors.New("not CSV, TSV or JSON")

// binaryKind names the binary format head, the first decompressed bytes of
// a body, starts with, or says it holds NUL bytes; "" for text. encoding is
// detectEncoding's verdict (UTF-16 text holds NUL bytes).
func binaryKind(head []byte, encoding string) string {
	for _, m := range []struct {
		magic string
		kind  string
	}{
		{"ARROW1", "an Arrow IPC file (not read yet: convert it to CSV or JSON lines)"},
		{"\xff\xff\xff\xff", "an Arrow IPC stream (not read yet: convert it to CSV or JSON lines)"},
		{"\x89PNG\r\n\x1a\n", "a PNG image"},
		{"\xff\xd8\xff", "a JPEG image"},
		{"GIF87a", "a GIF image"}, {"GIF89a", "a GIF image"},
		{"%PDF-", "a PDF document"},
		{"PK\x03\x04", "a zip archive (also xlsx, docx, jar): unpack it and publish its files"},
		{"PK\x05\x06", "an empty zip archive"},
		{"\xfd7zXZ\x00", "an xz archive: trainfeed decompresses gzip and zstd"},
		{"BZh", "a bzip2 archive: trainfeed decompresses gzip and zstd"},
		{"7z\xbc\xaf\x27\x1c", "a 7-zip archive"},
		{"\x7fELF", "an executable"},
		{"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE document (xls, doc)"},
	} {
		if bytes.HasPrefix(head, []byte(m.magic)) {
			return m.kind
		}
	}
	if len(head) > 262 && string(head[257:262]) == "ustar" {
		return "a tar archive: unpack it and publish its files"
	}
	if encoding != encodingUTF16 {
		if i := bytes.IndexByte(head, 0); i >= 0 {
			return fmt.Sprintf("binary data (a NUL byte at offset %d)", i)
		}
	}
	return ""
}

// close releases the decompressor.
func (in *input) close() {
	for _, c := range in.closers {
		c()
	}
}

// openInput layers decompression (gzip or zstd, recognised by their magic
// bytes) with its limits, text decoding, the record size limit and a buffer
// over r, and drops a UTF-8 byte order mark.
func openInput(r io.Reader, opts ParseOptions) (*input, error) {
	in := &input{src: &sourceReader{r: r}, encoding: encodingUTF8}
	dec, err := in.decompress(opts)
	if err != nil {
		return nil, err
	}

	// The text encoding is decided on the first buffer of decoded input.
	pre := bufio.NewReaderSize(dec, ReadBufSize)
	head, err := pre.Peek(ReadBufSize)
	var text io.Reader = pre
	in.encoding = detectEncoding(head, err == nil)
	if bytes.HasPrefix(head, []byte(parquetMagic)) {
		in.parquet = pre
		return in, nil
	}
	if kind := binaryKind(head, in.encoding); kind != "" {
		in.close()
		return nil, &ParseError{Line: 1, Err: fmt.Errorf("%w: the body is %s", ErrNotText, kind)}
	}
	switch in.encoding {
	case encodingUTF16:
		text = transform.NewReader(pre, unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder())
	case encodingWin1252:
		text = transform.NewReader(pre, charmap.Windows1252.NewDecoder())
	}

	in.lim = &limitReader{r: text, max: maxLineBytes + ReadBufSize}
	in.buf = bufio.NewReaderSize(in.lim, ReadBufSize)
	if bom, _ := in.buf.Peek(3); len(bom) == 3 && bom[0] == 0xEF && bom[1] == 0xBB && bom[2] == 0xBF {
		_, _ = in.buf.Discard(3)
		// All the limit reader has read is buffered: look again without
		// the mark.
		rest, _ := in.buf.Peek(in.buf.Buffered())
		in.lim.nonASCII = !isASCII(rest)
	}
	if err := in.guard.failed(); err != nil {
		in.close()
		return nil, &ParseError{Err: err}
	}
	return in, nil
}

// decompress layers the decompressor the magic bytes of the input ask for,
// with its limits, over a buffer of in.src.
func (in *input) decompress(opts ParseOptions) (io.Reader, error) {
	raw := bufio.NewReaderSize(in.src, ReadBufSize)
	var dec io.Reader = raw
	magic, _ := raw.Peek(4)
	switch {
	case isGzip(magic):
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, in.fail(0, fmt.Errorf("gzip: %w", err))
		}
		in.compression = "gzip"
		dec = zr
		in.closers = append(in.closers, func() { zr.Close() })
	case isZstd(magic):
		zr, err := zstd.NewReader(raw,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, in.fail(0, fmt.Errorf("zstd: %w", err))
		}
		in.compression = "zstd"
		dec = zr
		in.closers = append(in.closers, zr.Close)
	}
	if in.compression != "" {
		in.guard = &guardReader{r: dec, src: in.src, name: in.compression,
			max: opts.MaxDecompressedBytes, ratio: int64(opts.MaxDecompressionRatio)}
		dec = in.guard
	}
	return dec, nil
}

// IsCompressed reports whether magic, the first bytes of a body, start
// gzip or zstd data.
func IsCompressed(magic []byte) bool { return isGzip(magic) || isZstd(magic) }

// CheckDecompression reads r to its end through the decompressor and its
// limits and returns the error Parse would meet there, so that a
// decompression bomb is refused before any of its records is published. It
// checks ctx every few megabytes.
func CheckDecompression(ctx context.Context, r io.Reader, opts ParseOptions) error {
	if opts.MaxDecompressedBytes <= 0 {
		opts.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if opts.MaxDecompressionRatio <= 0 {
		opts.MaxDecompressionRatio = DefaultMaxDecompressionRatio
	}
	in := &input{src: &sourceReader{r: r}}
	dec, err := in.decompress(opts)
	if err != nil {
		return err
	}
	defer in.close()
	buf := make([]byte, ReadBufSize)
	for i := 0; ; i++ {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if _, err := dec.Read(buf); err != nil {
			if err == io.EOF {
				return nil
			}
			return in.fail(0, err)
		}
	}
}

func isGzip(magic []byte) bool { return len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b }

// isZstd recognises a zstd frame or a skippable frame, which the decoder
// passes over.
func isZstd(magic []byte) bool {
	if len(magic) < 4 {
		return false
	}
	m := binary.LittleEndian.Uint32(magic)
	return m == 0xFD2FB528 || m&0xFFFFFFF0 == 0x184D2A50
}

// detectEncoding names the encoding of a body from its start: UTF-16 when
// it starts with a UTF-16 byte order mark; Windows-1252 when it holds no NUL
// byte and more bytes that are not UTF-8 than UTF-8 sequences of more than
// one byte (text from a legacy system, Latin-1 in practice, of which
// Windows-1252 is a superset on printable characters); UTF-8 otherwise,
// invalid bytes being replaced later.
//
// more says the body goes on after head, so a rune may be cut at its end.
func detectEncoding(head []byte, more bool) string {
	if len(head) >= 2 && ((head[0] == 0xFF && head[1] == 0xFE) || (head[0] == 0xFE && head[1] == 0xFF)) {
		return encodingUTF16
	}
	if isASCII(head) {
		return encodingUTF8
	}
	// A rune the buffer cuts in two is not an error.
	cut := len(head)
	for i := len(head) - 1; more && i >= 0 && i >= len(head)-utf8.UTFMax; i-- {
		if !utf8.RuneStart(head[i]) {
			continue
		}
		if !utf8.FullRune(head[i:]) {
			cut = i
		}
		break
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return encodingUTF8
	}
	// UTF-8 text with a few bad bytes stays UTF-8; text whose bytes above
	// 0x7F are mostly not UTF-8 is Windows-1252.
	var valid, invalid int
	for b := head[:cut]; len(b) > 0; {
		if b[0] < utf8.RuneSelf {
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			invalid++
		} else {
			valid++
		}
		b = b[size:]
	}
	if invalid > valid {
		return encodingWin1252
	}
	return encodingUTF8
}

// fail turns an error met on line into the error Parse returns: a read error
// of the source as is, anything else (bad compressed data, a decompression
// limit, an overlong line, bad syntax) as a *ParseError.
func (in *input) fail(line int64, err error) error {
	if in.src.err != nil {
		return fmt.Errorf("line %d: read: %w", line, in.src.err)
	}
	if gerr := in.guard.failed(); gerr != nil {
		return &ParseError{Line: line, Err: gerr}
	}
	if in.lim != nil && in.lim.exceeded() {
		return &ParseError{Line: line, Err: errLineTooLong}
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe
	}
	if in.compression != "" && err != nil && !errors.Is(err, errLineTooLong) {
		err = fmt.Errorf("%s: %w", in.compression, err)
	}
	return &ParseError{Line: line, Err: err}
}

// failed reports whether reading failed for a reason that is not a
// malformed row: the source, the decompressor's limits or the record limit.
func (in *input) failed() bool {
	return in.src.err != nil || in.guard.failed() != nil || in.lim.exceeded()
}

// sourceReader remembers the first error of the caller's reader other than
// io.EOF, which is not the input's fault, and counts the bytes read.
type sourceReader struct {
	r   io.Reader
	n   int64
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// guardReader refuses decompressed output past max bytes, or past ratio
// times the compressed bytes read once it is over ratioFloor, so that a
// decompression bomb fails with a reason instead of exhausting memory or
// time.
type guardReader struct {
	r     io.Reader
	src   *sourceReader
	name  string
	n     int64
	max   int64
	ratio int64
	err   error
}

func (g *guardReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	switch {
	case g.n > g.max:
		g.err = fmt.Errorf("%w: %s body decompresses to more than %d bytes", ErrDecompressionLimit, g.name, g.max)
	case g.n > ratioFloor && g.n > g.ratio*g.src.n:
		g.err = fmt.Errorf("%w: %s body expands more than %d times (%d bytes from %d compressed): refused as a decompression bomb",
			ErrDecompressionLimit, g.name, g.ratio, g.n, g.src.n)
	}
	if g.err != nil {
		return 0, g.err
	}
	return n, err
}

// failed returns the limit g hit, if any; g may be nil.
func (g *guardReader) failed() error {
	if g == nil {
		return nil
	}
	return g.err
}

// limitReader fails once more than max bytes have been read since the last
// reset. Resetting it after every record bounds a record to about
// max - ReadBufSize bytes, as the buffer above it reads at most that far
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

func (l *limitReader) reset() { l.n = 0 }

func (l *limitReader) exceeded() bool { return l.n > l.max }

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
