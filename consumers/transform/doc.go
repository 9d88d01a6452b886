// Package transform is the transform stage: it streams fetched bodies out of
// the object store, parses them with package parse into typed columnar
// record batches, runs each dataset's spec (package spec) and Go Funcs on
// them and publishes them for combine. The parsers and the spec language
// are its pure cores, in those packages; this one is the handler.
//
// Memory per source is bounded by the stage's settings, never by the size of
// the input: a few chunks of the body, one batch being parsed, two waiting
// for the publisher and Config.Publishing awaiting acknowledgement (plus, for
// a dedupe step, 16 to 32 bytes per distinct key). docs/transforms.md
// describes specs, docs/schema.md the types and how they may drift.
package transform
