package spec_test

import (
	"fmt"

	"github.com/trainfeed/trainfeed/consumers/transform/spec"
)

// A spec read from YAML; LoadSpec and LoadSpecs read files.
func ExampleParseSpec() {
	s, err := spec.ParseSpec([]byte(`
steps:
  - trim: [text]
  - filter: {column: stars, op: ">=", value: 4}
  - hash_bucket: {column: user, buckets: 1024}
`), "yaml")
	fmt.Println(len(s.Steps), err)

	_, err = spec.ParseSpec([]byte("steps:\n  - filter: {column: stars, op: '=>', value: 4}\n"), "yaml")
	fmt.Println(err)
	// Output:
	// 3 <nil>
	// step 1 (filter): unknown op "=>": want ==, !=, <, <=, >, >=, in or not_in
}
