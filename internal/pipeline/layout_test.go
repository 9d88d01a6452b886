package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// module is this module's path.
const module = "github.com/trainfeed/trainfeed"

// A package's place in the layout: imports flow one way,
// cmd and bench → the composition root → stages and producers → leaves.
type place int

const (
	leaf     place = iota // internal/*: wire types, chunk and dataset formats, runner, …
	kit                   // internal/*test and internal/cluster: test kits, may use anything but tools
	stage                 // consumers/*: one stage (or follow) each
	producer              // producers: the ways sources come in
	root                  // internal/pipeline: the composition root
	tool                  // cmd/*, bench: the binaries and the benchmarks
)

func (p place) String() string {
	return [...]string{"leaf", "test kit", "stage", "producers", "composition root", "tool"}[p]
}

// placeOf returns where rel (an import path inside the module, without
// the module prefix) sits.
func placeOf(rel string) place {
	switch {
	case strings.HasPrefix(rel, "cmd/"), rel == "bench":
		return tool
	case rel == "internal/pipeline":
		return root
	case strings.HasPrefix(rel, "consumers/"):
		return stage
	case rel == "producers":
		return producer
	case strings.HasSuffix(rel, "test"), rel == "internal/cluster", strings.HasPrefix(rel, "internal/cluster/"):
		return kit
	default:
		return leaf
	}
}

// stageOf returns the stage a package under consumers/ belongs to: its
// own, or its parent's for a core such as consumers/transform/parse.
func stageOf(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	return parts[0] + "/" + parts[1]
}

// allowed reports whether a package at from may import one at to (in its
// tests when test is set), and why not when it may not.
func allowed(from, to string, test bool) (bool, string) {
	pf, pt := placeOf(from), placeOf(to)
	switch {
	case from == to:
		return true, "" // an external test package
	case pt == tool && pf != tool:
		return false, "only tools import tools"
	case pf == tool || pf == kit:
		return true, ""
	case pt == kit:
		if test {
			return true, ""
		}
		return false, "test kits are for tests"
	case pf == root:
		return true, ""
	case pt == root:
		return false, "only tools import the composition root"
	case pf == stage && pt == stage && stageOf(from) != stageOf(to):
		return false, "no stage imports another: share through a leaf package"
	case pf == leaf && (pt == stage || pt == producer):
		return false, "leaf packages import only leaves"
	case pf == producer && pt == stage:
		return false, "producers publish, they do not import stages"
	}
	return true, ""
}

// listed is what go list says of one package.
type listed struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// Imports flow one way, tests included: every package's imports inside the
// module are allowed by its place, and a violation names the import.
func TestImportsFlowOneWay(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test=false", "-json=ImportPath,Imports,TestImports,XTestImports", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())

	var bad []string
	seen := 0
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		require.NoError(t, dec.Decode(&p))
		from, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok {
			continue // the standard library and other modules
		}
		seen++
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to, ok := strings.CutPrefix(imp, module+"/")
				if !ok {
					continue
				}
				if ok, why := allowed(from, to, test); !ok {
					in := ""
					if test {
						in = "in its tests "
					}
					bad = append(bad, fmt.Sprintf("%s (%s) %simports %s (%s): %s", from, placeOf(from), in, to, placeOf(to), why))
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	require.Greater(t, seen, 20, "go list found the module's packages")
	require.Empty(t, bad, "imports that flow the wrong way:\n%s", strings.Join(bad, "\n"))
}

// The rules themselves: a stage importing another is refused with why.
func TestImportRules(t *testing.T) {
	tests := []struct {
		from, to string
		test     bool
		ok       bool
	}{
		{"cmd/trainfeed", "internal/pipeline", false, true},
		{"bench", "consumers/combine", false, true},
		{"internal/pipeline", "consumers/combine", false, true},
		{"consumers/combine", "internal/dataset", false, true},
		{"consumers/fetch", "consumers/combine", false, false},
		{"consumers/transform", "consumers/transform/parse", false, true},
		{"consumers/combine", "consumers/transform/parse", false, false},
		{"internal/dataset", "consumers/combine", false, false},
		{"internal/metrics", "producers", false, false},
		{"consumers/transform", "internal/pipeline", false, false},
		{"producers", "consumers/fetch", false, false},
		{"internal/pipeline", "cmd/trainfeed", false, false},
		{"internal/datasettest", "internal/dataset", false, true},
		{"internal/wire", "internal/natstest", false, false},
		{"internal/wire", "internal/natstest", true, true},
		{"cmd/trainfeed", "bench", false, true},
		{"internal/pipeline", "bench", false, false},
	}
	for _, tt := range tests {
		ok, why := allowed(tt.from, tt.to, tt.test)
		require.Equal(t, tt.ok, ok, "%s → %s", tt.from, tt.to)
		require.Equal(t, ok, why == "", "%s → %s: %s", tt.from, tt.to, why)
	}
}
