// Package transform is the transform stage: it streams fetched bodies out of
// the object store, parses them (CSV, TSV, JSON lines, JSON arrays; plain,
// gzip or zstd; UTF-8, UTF-16 or Windows-1252) into typed columnar record
// batches, runs each dataset's declarative Spec and Go Funcs on them and
// publishes them for combine.
//
// Memory per source is bounded by the stage's settings, never by the size of
// the input: a few chunks of the body, one batch being parsed, two waiting
// for the publisher and Config.Publishing awaiting acknowledgement (plus, for
// a dedupe step, 16 to 32 bytes per distinct key). docs/transforms.md
// describes specs, docs/schema.md the types and how they may drift.
package transform
