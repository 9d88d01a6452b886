package bench

import (
	"context"
	"fmt"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// seedSpec is the transform of the pipeline trainfeed replaces, on the
// columns of Schema: text trimmed, empty texts dropped, names lower-cased,
// text tokenised, the log1p of value.
const seedSpec = `
steps:
  - trim: [text]
  - drop_empty: [text]
  - lower: [name]
  - tokens: {column: text, as: words}
  - log1p: {column: value, as: value_log}
`

// SeedSpec returns the transform every W1 way runs when Config.Spec asks
// for it: the seed's (trim, drop_empty, lower, tokens, log1p).
func SeedSpec() *spec.Spec {
	s, err := spec.ParseSpec([]byte(seedSpec), "yaml")
	if err != nil {
		panic(fmt.Sprintf("bench: seed spec: %v", err)) // a constant: a test reads it
	}
	return s
}

// program compiles cfg.Spec; nil when there is none.
func (c Config) program() (*spec.Program, error) {
	if c.Spec == nil {
		return nil, nil
	}
	p, err := spec.Compile(c.Spec, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: spec: %w", err)
	}
	return p, nil
}

// transformer runs a Program on one source's batches, as the transform
// stage does; the zero value (no program) passes batches through.
type transformer struct{ run *spec.Run }

func newTransformer(ctx context.Context, p *spec.Program) transformer {
	if p == nil {
		return transformer{}
	}
	return transformer{run: p.NewRun(ctx)}
}

// apply transforms the columns of b in place.
func (t transformer) apply(b *wire.RecordBatch) error {
	if t.run == nil {
		return nil
	}
	out, err := t.run.Apply(&parse.Batch{Columns: b.Columns, Rows: b.Rows, Last: b.Last})
	if err != nil {
		return err
	}
	b.Columns, b.Rows = out.Columns, out.Rows
	return nil
}
