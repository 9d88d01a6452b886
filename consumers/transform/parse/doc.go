// Package parse turns a body into typed columnar record batches as it
// streams: CSV, TSV, JSON lines, JSON arrays (or the array a records path
// names) and Parquet; plain, gzip or zstd; UTF-8, UTF-16 or Windows-1252.
// A column's type is the narrowest its values fit without changing their
// text (docs/schema.md). Malformed rows are skipped and listed; a body that
// is not a text table fails with ErrNotText. It holds the transform stage's
// pure core: no NATS, no object store, only an io.Reader in and batches out.
package parse
