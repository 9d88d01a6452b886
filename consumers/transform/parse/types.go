package parse

import "github.com/trainfeed/trainfeed/internal/wire"

// The types a Batch is made of, under names a program outside this module
// can use (the wire package that defines them is internal): a Func reads
// and builds columns with them.
type (
	// Column is one typed column of a Batch: Rows values in the slice of
	// its Type (Ints for int and timestamp, Floats, Bools, Strings), Nulls
	// marking the missing ones. docs/wire.md describes it.
	Column = wire.Column
	// Type is a column's type.
	Type = wire.Type
	// SkippedRow is a malformed input row a parser left out, and why.
	SkippedRow = wire.SkippedRow
)

// The column types.
const (
	TypeInt    = wire.TypeInt
	TypeFloat  = wire.TypeFloat
	TypeBool   = wire.TypeBool
	TypeString = wire.TypeString
	// TypeTimestamp values are instants, in Ints as microseconds since the
	// Unix epoch, UTC.
	TypeTimestamp = wire.TypeTimestamp
)
