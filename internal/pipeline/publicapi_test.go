package pipeline_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/cluster"
)

// buildBlock matches a Go block of the docs marked to be built: the
// marker, then the fenced block after it.
var buildBlock = regexp.MustCompile("(?s)<!-- build: (\\w+) -->\\n```go\\n(.*?)```")

// A program in a module of its own — another team's, with a replace
// directive to this checkout — publishes sources and registers a
// transform Func with the exported API only, as docs/transforms.md's Go
// example does: it builds and vets.
func TestPublicAPIBuildsFromAnotherModule(t *testing.T) {
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join(repo, "docs", "transforms.md"))
	require.NoError(t, err)
	m := buildBlock.FindSubmatch(doc)
	require.NotNil(t, m, "docs/transforms.md marks its Go example <!-- build: transform -->")

	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)
	files := map[string]string{
		"go.mod": "module example.com/trainer\n\ngo 1.26\n\n" +
			"require github.com/trainfeed/trainfeed v0.0.0\n\n" +
			"replace github.com/trainfeed/trainfeed => " + repo + "\n",
		"go.sum": string(sum), // the same dependencies as this module
		"transform.go": `package main

import (
	"context"

	"github.com/trainfeed/trainfeed/consumers/transform"
	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
)

// config is docs/transforms.md's Go example, as written.
func config() transform.Config {
` + string(m[2]) + `	return cfg
}
`,
		"main.go": `package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/producers"
)

func main() {
	cfg := config()
	if err := cfg.Specs["shop"].Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		os.Exit(1)
	}
	pub, err := producers.NewPublisher(js, "web")
	if err != nil {
		os.Exit(1)
	}
	src, err := pub.Publish(context.Background(), producers.Source{ID: "a-2025-01", URL: "https://example.com/a.csv", Format: "csv"})
	switch {
	case errors.Is(err, producers.ErrFull):
		fmt.Println("pipeline full, try again later")
	case err != nil:
		fmt.Println("not stored:", err)
	}
	fmt.Println(src.ID, src.Dataset)
}
`,
	}
	for name, text := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	for _, args := range [][]string{{"mod", "tidy"}, {"vet", "./..."}, {"build", "-o", filepath.Join(dir, "trainer"), "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Run(), "go %v in a module of its own:\n%s", args, out.String())
	}
	require.FileExists(t, filepath.Join(dir, "trainer"))
	// The build read this module's sources outside the test: make them
	// part of its cached result.
	sources, err := cluster.Sources("github.com/trainfeed/trainfeed/producers", "github.com/trainfeed/trainfeed/consumers/transform")
	require.NoError(t, err)
	cluster.TouchSources(t, sources)
}
