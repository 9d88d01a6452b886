package fetch

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// A header value of a source may name secrets instead of holding them:
// "Bearer ${env:API_TOKEN}" is sent with the secret env:API_TOKEN in its
// place, resolved when the request is made. Only the reference is ever
// published, stored, dead-lettered or logged; the value exists in this
// process only, for the request.

// Secrets resolves secret references: ref is "kind:name" ("env:API_TOKEN",
// "file:token"). It is defined here, where it is used; `trainfeed` gives
// one that reads allowed environment variables and files.
type Secrets interface {
	Secret(ctx context.Context, ref string) (string, error)
}

// ErrNoSecret reports a reference its Secrets cannot resolve: an unknown
// kind, a name it does not allow, or no such secret.
var ErrNoSecret = errors.New("no such secret")

// secretRef matches a reference in a header value: ${kind:name}.
var secretRef = regexp.MustCompile(`\$\{([a-z]+):([^{}]+)\}`)

// resolveHeaders returns headers with every secret reference replaced by
// its value; headers itself is not changed. A reference that does not
// resolve fails the source for good, naming the reference, never a value.
func (h *Handler) resolveHeaders(ctx context.Context, disp string, headers map[string]string) (map[string]string, error) {
	var out map[string]string
	for k, v := range headers {
		if !strings.Contains(v, "${") {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(headers))
			for k2, v2 := range headers {
				out[k2] = v2
			}
		}
		var rerr error
		out[k] = secretRef.ReplaceAllStringFunc(v, func(m string) string {
			ref := m[2 : len(m)-1]
			if h.cfg.Secrets == nil {
				rerr = fmt.Errorf("header %s names secret %s, but no secret store is configured: %w", k, ref, ErrNoSecret)
				return ""
			}
			val, err := h.cfg.Secrets.Secret(ctx, ref)
			if err != nil && rerr == nil {
				rerr = fmt.Errorf("header %s: secret %s: %w", k, ref, err)
			}
			return val
		})
		if rerr != nil {
			return nil, runner.Permanent(fmt.Errorf("fetch %s: %w", disp, rerr))
		}
	}
	if out == nil {
		return headers, nil
	}
	return out, nil
}
