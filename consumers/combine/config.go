package combine

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/trainfeed/trainfeed/internal/chunk"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Config shapes the combine stage.
type Config struct {
	// Out is the folder datasets are written to, one sub-folder each.
	Out string
	// Format of chunk files. Default Parquet.
	Format chunk.Format
	// ChunkRecords flushes a chunk once it holds this many records. Batches
	// are never split, so a chunk holds at most ChunkRecords records unless a
	// single batch is larger. Default 10,000.
	ChunkRecords int
	// ChunkBytes flushes a chunk once its values reach about this many bytes.
	// Default 16 MiB: a chunk's batches are held in memory until it commits.
	ChunkBytes int64
	// MaxAge flushes a chunk when its oldest record has waited this long, so
	// data reaches trainers while a slow stream runs. Default 5s.
	MaxAge time.Duration
	// Idle flushes a chunk when no batch has arrived for this long: the input
	// has ended, for now. Default 100ms.
	Idle time.Duration
	// MaxHeld flushes a chunk once it holds this many messages; keep it at or
	// below half the combine consumer's ack window so the next chunk can fill
	// while one commits. Default 32 (the default window is 64).
	MaxHeld int
	// Mismatch says what becomes of a value the dataset's type for its
	// column cannot hold unchanged ("00501" in an int column). Default
	// MismatchWiden.
	Mismatch Mismatch
	// MismatchFor overrides Mismatch for the datasets it names.
	MismatchFor map[string]Mismatch
	// OnCommit, if set, is called with each chunk this member commits,
	// and with each rewrite it commits (Replaces set): for metrics. It
	// must not block.
	OnCommit func(ch *wire.Chunk)
	// Logger receives commit lines. Default slog.Default().
	Logger *slog.Logger
}

// mismatch returns the policy of dataset.
func (c Config) mismatch(dataset string) Mismatch {
	if m, ok := c.MismatchFor[dataset]; ok {
		return m
	}
	return c.Mismatch
}

// Mismatch is a policy for values that do not fit their dataset column.
type Mismatch string

const (
	// MismatchWiden widens the column's type until the value fits it
	// unchanged (int to float, anything to string): a new schema version,
	// in which the dataset's earlier chunks are written again, so every
	// chunk file keeps one type per column.
	MismatchWiden Mismatch = "widen"
	// MismatchNull writes the value as null and counts it in the part's
	// nulled count, the log and the run summary.
	MismatchNull Mismatch = "null"
	// MismatchFail fails the value's source: its batch is dead-lettered
	// with the column, the types and the first such value.
	MismatchFail Mismatch = "fail"
)

// mismatchPolicies names the policies, for errors.
const mismatchPolicies = `"widen", "null" or "fail"`

// valid reports whether m is one of the policies.
func (m Mismatch) valid() bool {
	return m == MismatchWiden || m == MismatchNull || m == MismatchFail
}

// DefaultConfig returns the settings combine runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Format:       chunk.Parquet,
		ChunkRecords: 10_000,
		ChunkBytes:   16 << 20,
		MaxAge:       5 * time.Second,
		Idle:         100 * time.Millisecond,
		MaxHeld:      32,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Format == "" {
		c.Format = d.Format
	}
	if c.ChunkRecords == 0 {
		c.ChunkRecords = d.ChunkRecords
	}
	if c.ChunkBytes == 0 {
		c.ChunkBytes = d.ChunkBytes
	}
	if c.MaxAge == 0 {
		c.MaxAge = d.MaxAge
	}
	if c.Idle == 0 {
		c.Idle = d.Idle
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = d.MaxHeld
	}
	if c.Mismatch == "" {
		c.Mismatch = MismatchWiden
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.Out == "" {
		return errors.New("combine: output folder is required")
	}
	if _, err := chunk.ParseFormat(string(c.Format)); err != nil {
		return fmt.Errorf("combine: %w", err)
	}
	if c.ChunkRecords < 1 {
		return fmt.Errorf("combine: chunk records %d must be positive", c.ChunkRecords)
	}
	if c.ChunkBytes < 1 {
		return fmt.Errorf("combine: chunk bytes %d must be positive", c.ChunkBytes)
	}
	if c.MaxAge <= 0 || c.Idle <= 0 {
		return fmt.Errorf("combine: max age %s and idle %s must be positive", c.MaxAge, c.Idle)
	}
	if c.Mismatch != "" && !c.Mismatch.valid() {
		return fmt.Errorf("combine: type mismatch policy %q: want %s", c.Mismatch, mismatchPolicies)
	}
	for ds, m := range c.MismatchFor {
		if !m.valid() {
			return fmt.Errorf("combine: type mismatch policy %q of dataset %s: want %s", m, ds, mismatchPolicies)
		}
	}
	if c.MaxHeld < 1 {
		return fmt.Errorf("combine: max held %d must be positive", c.MaxHeld)
	}
	return nil
}
