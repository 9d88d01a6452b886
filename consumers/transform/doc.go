// Package transform is the transform stage: it streams fetched bodies out of
// the object store, parses them (CSV, JSON lines; gzip) into typed columnar
// record batches and publishes them for combine.
package transform
