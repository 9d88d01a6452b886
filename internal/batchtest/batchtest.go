// Package batchtest is a test kit for record batches: their columns as
// plain values that require.Equal compares and prints readably, and
// schemas written briefly.
package batchtest

import "github.com/trainfeed/trainfeed/internal/wire"

// Col is a column as tests expect it: its name, its type and its values as
// wire.Column.Value returns them (nil for null).
type Col struct {
	Name   string
	Type   wire.Type
	Values []any
}

// Cols returns the first rows rows of columns as Cols.
func Cols(columns []wire.Column, rows int) []Col {
	out := make([]Col, len(columns))
	for i := range columns {
		c := &columns[i]
		out[i] = Col{Name: c.Name, Type: c.Type}
		for r := range rows {
			out[i].Values = append(out[i].Values, c.Value(r))
		}
	}
	return out
}

// Values appends to out the first rows values of the column called name,
// if columns has one, and returns it.
func Values(out []any, columns []wire.Column, rows int, name string) []any {
	for i := range columns {
		if columns[i].Name == name {
			for r := range rows {
				out = append(out, columns[i].Value(r))
			}
		}
	}
	return out
}

// Fields builds a schema from name, type pairs: Fields("id", "int", "name", "string").
func Fields(nameTypes ...string) []wire.Field {
	out := make([]wire.Field, 0, len(nameTypes)/2)
	for i := 0; i+1 < len(nameTypes); i += 2 {
		out = append(out, wire.Field{Name: nameTypes[i], Type: wire.Type(nameTypes[i+1])})
	}
	return out
}
