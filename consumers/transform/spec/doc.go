// Package spec is the declarative transform language of docs/transforms.md:
// a Spec is a list of steps (select, rename, cast, filter, derive, dedupe,
// Go Funcs, …) that Compile checks and turns into a Program, which runs on
// one source's parse.Batches at a time. It has no NATS in it: the transform
// stage runs it on every body, tests and benchmarks run it alone.
package spec
