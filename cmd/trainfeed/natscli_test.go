package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// natsCLIModule is the NATS CLI the tests publish with when none is on
// PATH: a version the Go module proxy serves and that builds with Go 1.26.
const natsCLIModule = "github.com/nats-io/natscli/nats@v0.5.0"

var natsCLIOnce struct {
	sync.Once
	path string
	out  []byte
	err  error
}

// natsCLI returns the path of the real NATS CLI (`nats`): the one on PATH,
// or one `go install`ed once into the user's cache directory, so the test
// suite needs nothing installed beforehand.
func natsCLI(t *testing.T) string {
	t.Helper()
	natsCLIOnce.Do(func() {
		if p, err := exec.LookPath("nats"); err == nil {
			natsCLIOnce.path = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		gobin := filepath.Join(cache, "trainfeed-test", "natscli-v0.5.0")
		natsCLIOnce.path = filepath.Join(gobin, "nats")
		if _, err := os.Stat(natsCLIOnce.path); err == nil {
			return
		}
		install := exec.Command("go", "install", natsCLIModule)
		install.Dir = t.TempDir() // outside this module: `go install pkg@version` ignores go.mod anyway
		install.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
		natsCLIOnce.out, natsCLIOnce.err = install.CombinedOutput()
	})
	require.NoError(t, natsCLIOnce.err, "install the NATS CLI (go install %s):\n%s", natsCLIModule, natsCLIOnce.out)
	return natsCLIOnce.path
}
