package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/trainfeed/trainfeed/consumers/fetch"
)

// secretEnvPrefix starts the name of every environment variable a source
// may name as a secret: ${env:API_TOKEN} is TRAINFEED_SECRET_API_TOKEN, so
// that a source cannot send this process's other variables anywhere.
const secretEnvPrefix = "TRAINFEED_SECRET_"

// secretName is what a secret's name may be: a plain name, no path.
var secretName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// localSecrets is the fetch stage's secret store of this process:
// ${env:NAME} reads TRAINFEED_SECRET_NAME, ${file:NAME} the file NAME in
// --secrets-dir (trailing newline removed). Nothing else is reachable.
type localSecrets struct {
	dir string // --secrets-dir; "" refuses file secrets
}

// Secret resolves ref, "env:NAME" or "file:NAME".
func (s *localSecrets) Secret(_ context.Context, ref string) (string, error) {
	kind, name, _ := strings.Cut(ref, ":")
	if !secretName.MatchString(name) || strings.Contains(name, "..") {
		return "", fmt.Errorf("%q is not a secret name (letters, digits, _ . -): %w", name, fetch.ErrNoSecret)
	}
	switch kind {
	case "env":
		v, ok := os.LookupEnv(secretEnvPrefix + name)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s%s is not set: %w", secretEnvPrefix, name, fetch.ErrNoSecret)
		}
		return v, nil
	case "file":
		if s.dir == "" {
			return "", fmt.Errorf("file secrets need --secrets-dir: %w", fetch.ErrNoSecret)
		}
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			return "", fmt.Errorf("file %s in --secrets-dir: %w", name, fetch.ErrNoSecret)
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	default:
		return "", fmt.Errorf("unknown secret kind %q: want env or file: %w", kind, fetch.ErrNoSecret)
	}
}
