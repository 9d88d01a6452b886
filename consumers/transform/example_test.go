package transform_test

import (
	"context"
	"fmt"

	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
)

// A Go transform registered under a name, called from a spec built in Go.
func ExampleConfig() {
	cfg := transform.DefaultConfig()
	cfg.Funcs = map[string]spec.Func{
		"normalize_price": func(ctx context.Context, b *parse.Batch) (*parse.Batch, error) {
			for i := range b.Columns {
				c := &b.Columns[i]
				if c.Name == "price_cents" && c.Type == parse.TypeInt {
					prices := make([]float64, b.Rows)
					for r, v := range c.Ints {
						prices[r] = float64(v) / 100
					}
					*c = parse.Column{Name: "price", Type: parse.TypeFloat, Floats: prices, Nulls: c.Nulls}
				}
			}
			return b, nil
		},
	}
	cfg.Specs = map[string]*spec.Spec{
		"shop": {Steps: []spec.Step{
			{Select: []string{"sku", "price_cents"}},
			{Func: "normalize_price"},
			{Filter: &spec.Filter{Column: "price", Op: ">", Value: 0}},
		}},
	}
	fmt.Println(cfg.Validate())

	cfg.Specs["shop"].Steps = append(cfg.Specs["shop"].Steps, spec.Step{Func: "missing"})
	fmt.Println(cfg.Validate())
	// Output:
	// <nil>
	// transform: spec of dataset shop: step 4 (func): no func "missing" registered in Config.Funcs
}
