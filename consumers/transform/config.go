package transform

import (
	"fmt"
	"log/slog"
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
	Specs map[string]*Spec
	// Funcs registers Go transforms under the names spec steps call them
	// by ({func: name}).
	Funcs map[string]Func
	// Logger receives a warning per skipped row. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the settings transform runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		MaxBatchBytes: 512 << 10, MaxBatchRows: 5000, Publishing: 4,
		MaxDecompressedBytes: DefaultMaxDecompressedBytes, MaxDecompressionRatio: DefaultMaxDecompressionRatio,
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
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
func (c Config) programs() (map[string]*program, error) {
	progs := make(map[string]*program, len(c.Specs))
	funcs := c.Funcs
	if funcs == nil {
		funcs = map[string]Func{}
	}
	for dataset, s := range c.Specs {
		p, err := compile(s, funcs)
		if err != nil {
			return nil, fmt.Errorf("transform: spec of dataset %s: %w", dataset, err)
		}
		progs[dataset] = p
	}
	return progs, nil
}
