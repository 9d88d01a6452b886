package transform_test

import (
	"context"
	"fmt"

	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// A Go transform registered under a name, called from a spec built in Go.
func ExampleFunc() {
	cfg := transform.DefaultConfig()
	cfg.Funcs = map[string]transform.Func{
		"normalize_price": func(ctx context.Context, b *transform.Batch) (*transform.Batch, error) {
			for i := range b.Columns {
				c := &b.Columns[i]
				if c.Name == "price_cents" && c.Type == wire.TypeInt {
					prices := make([]float64, b.Rows)
					for r, v := range c.Ints {
						prices[r] = float64(v) / 100
					}
					*c = wire.Column{Name: "price", Type: wire.TypeFloat, Floats: prices, Nulls: c.Nulls}
				}
			}
			return b, nil
		},
	}
	cfg.Specs = map[string]*transform.Spec{
		"shop": {Steps: []transform.Step{
			{Select: []string{"sku", "price_cents"}},
			{Func: "normalize_price"},
			{Filter: &transform.Filter{Column: "price", Op: ">", Value: 0}},
		}},
	}
	fmt.Println(cfg.Validate())

	cfg.Specs["shop"].Steps = append(cfg.Specs["shop"].Steps, transform.Step{Func: "missing"})
	fmt.Println(cfg.Validate())
	// Output:
	// <nil>
	// transform: spec of dataset shop: step 4 (func): no func "missing" registered in Config.Funcs
}

// A spec read from YAML; LoadSpec and LoadSpecs read files.
func ExampleParseSpec() {
	spec, err := transform.ParseSpec([]byte(`
steps:
  - trim: [text]
  - filter: {column: stars, op: ">=", value: 4}
  - hash_bucket: {column: user, buckets: 1024}
`), "yaml")
	fmt.Println(len(spec.Steps), err)

	_, err = transform.ParseSpec([]byte("steps:\n  - filter: {column: stars, op: '=>', value: 4}\n"), "yaml")
	fmt.Println(err)
	// Output:
	// 3 <nil>
	// step 1 (filter): unknown op "=>": want ==, !=, <, <=, >, >=, in or not_in
}
