package transform

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
)

// Config shapes the transform stage. A zero field takes its default.
type Config struct {
	// MaxBatchBytes bounds the raw value bytes of one record batch, so its
	// message stays under the 1 MiB payload limit (a batch that encodes
	// larger is split in two). Default 512 KiB: fewer, fuller messages and
	// chunks cost less per record than 256 KiB did (W2: about 10% faster).
	MaxBatchBytes int
	// MaxBatchRows bounds the records of one batch. Default 5,000.
	MaxBatchRows int
	// Publishing is how many batches of one source may await JetStream's
	// acknowledgement while parsing goes on. Default 4.
	Publishing int
	// Strict fails a source, permanently, at its first malformed row. By
	// default a malformed row is skipped, logged with its source and line,
	// and listed in the source's record batches (wire.RecordBatch.Skipped).
	Strict bool
	// MaxBadRows fails a source, permanently, that skips more malformed
	// rows than this. Default half the rows read; 100% never fails.
	MaxBadRows BadRows
	// MaxDecompressedBytes caps the decompressed size of one body; a larger
	// one fails permanently. Default 8 GiB.
	MaxDecompressedBytes int64
	// MaxDecompressionRatio fails a compressed body, permanently, once it
	// has expanded past 64 MiB and more than this many times the compressed
	// bytes read: a decompression bomb. Default 200.
	MaxDecompressionRatio int
	// Specs holds the declarative transform of each dataset, by dataset
	// name; the key "*" holds the one for datasets without their own.
	// LoadSpecs reads them from files.
	Specs map[string]*spec.Spec
	// Funcs registers Go transforms under the names spec steps call them
	// by ({func: name}).
	Funcs map[string]spec.Func
	// Logger receives a warning per skipped row. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the settings transform runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		MaxBatchBytes: 512 << 10, MaxBatchRows: 5000, Publishing: 4,
		MaxDecompressedBytes: parse.DefaultMaxDecompressedBytes, MaxDecompressionRatio: parse.DefaultMaxDecompressionRatio,
		MaxBadRows: DefaultMaxBadRows,
	}
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = d.MaxBatchBytes
	}
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = d.MaxBatchRows
	}
	if c.Publishing == 0 {
		c.Publishing = d.Publishing
	}
	if c.MaxDecompressedBytes == 0 {
		c.MaxDecompressedBytes = d.MaxDecompressedBytes
	}
	if c.MaxDecompressionRatio == 0 {
		c.MaxDecompressionRatio = d.MaxDecompressionRatio
	}
	if c.MaxBadRows == (BadRows{}) {
		c.MaxBadRows = d.MaxBadRows
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// BadRows limits the malformed rows a source may skip: more than Count
// rows (0: no count), or more than Fraction of the rows read, checked at
// the source's end (0: no fraction; 1 never fails).
type BadRows struct {
	Count    int
	Fraction float64
}

// DefaultMaxBadRows fails a source that skipped most of its rows: a body
// read in the wrong format, not a few broken lines (those are counted and
// named in run's summary).
var DefaultMaxBadRows = BadRows{Fraction: 0.5}

// ParseBadRows reads a limit as "N" (rows) or "P%" (of the rows read).
func ParseBadRows(s string) (BadRows, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return BadRows{}, fmt.Errorf("bad rows limit %q: want a percentage above 0 and up to 100", s)
		}
		return BadRows{Fraction: f / 100}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return BadRows{}, fmt.Errorf("bad rows limit %q: want a row count of at least 1 or a percentage such as 10%%", s)
	}
	return BadRows{Count: n}, nil
}

// String returns the limit as ParseBadRows reads it.
func (b BadRows) String() string {
	if b.Count > 0 {
		return strconv.Itoa(b.Count) + " rows"
	}
	return strconv.FormatFloat(b.Fraction*100, 'f', -1, 64) + "%"
}

// Validate reports settings that cannot work, and specs that are wrong or
// call funcs that are not registered.
func (c Config) Validate() error {
	if c.MaxBatchBytes < 1 || c.MaxBatchBytes > 768<<10 {
		return fmt.Errorf("transform: max batch bytes %d must be between 1 and 768 KiB", c.MaxBatchBytes)
	}
	if c.MaxBatchRows < 1 {
		return fmt.Errorf("transform: max batch rows %d must be positive", c.MaxBatchRows)
	}
	if c.MaxBadRows.Count < 0 || c.MaxBadRows.Fraction < 0 || c.MaxBadRows.Fraction > 1 {
		return fmt.Errorf("transform: max bad rows %+v: want a count of at least 0 and a fraction from 0 to 1", c.MaxBadRows)
	}
	if c.Publishing < 1 {
		return fmt.Errorf("transform: publishing %d must be positive", c.Publishing)
	}
	if c.MaxDecompressedBytes < 1 {
		return fmt.Errorf("transform: max decompressed bytes %d must be positive", c.MaxDecompressedBytes)
	}
	if c.MaxDecompressionRatio < 1 {
		return fmt.Errorf("transform: max decompression ratio %d must be positive", c.MaxDecompressionRatio)
	}
	_, err := c.programs()
	return err
}

// programs compiles the specs.
func (c Config) programs() (map[string]*spec.Program, error) {
	progs := make(map[string]*spec.Program, len(c.Specs))
	funcs := c.Funcs
	if funcs == nil {
		funcs = map[string]spec.Func{}
	}
	for dataset, s := range c.Specs {
		p, err := spec.Compile(s, funcs)
		if err != nil {
			return nil, fmt.Errorf("transform: spec of dataset %s: %w", dataset, err)
		}
		progs[dataset] = p
	}
	return progs, nil
}
