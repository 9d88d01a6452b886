package fetch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
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

// resolveHeaders returns the headers a source's request sends: its
// headers with every secret reference replaced by its value, and an
// Authorization header for its basic auth; src itself is not changed. A
// reference that does not resolve fails the source for good, naming the
// reference, never a value.
func (h *Handler) resolveHeaders(ctx context.Context, disp string, src wire.Source) (map[string]string, error) {
	out := src.Headers
	copied := false
	set := func(k, v string) {
		if !copied {
			m := make(map[string]string, len(out)+1)
			for k2, v2 := range out {
				m[k2] = v2
			}
			out, copied = m, true
		}
		out[k] = v
	}
	for k, v := range src.Headers {
		if !strings.Contains(v, "${") {
			continue
		}
		val, err := h.resolve(ctx, "header "+k, v)
		if err != nil {
			return nil, runner.Permanent(fmt.Errorf("fetch %s: %w", disp, err))
		}
		set(k, val)
	}
	if src.Auth != nil && src.Auth.Basic != nil {
		for k := range src.Headers {
			if strings.EqualFold(k, "Authorization") {
				return nil, runner.Permanent(fmt.Errorf("fetch %s: auth.basic and an Authorization header: give one", disp))
			}
		}
		b := src.Auth.Basic
		password, err := h.resolve(ctx, "auth.basic.password", b.Password)
		if err != nil {
			return nil, runner.Permanent(fmt.Errorf("fetch %s: %w", disp, err))
		}
		set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(b.User+":"+password)))
	}
	return out, nil
}

// resolve returns v with every secret reference in it replaced by its
// value; what names v in errors.
func (h *Handler) resolve(ctx context.Context, what, v string) (string, error) {
	var rerr error
	out := secretRef.ReplaceAllStringFunc(v, func(m string) string {
		ref := m[2 : len(m)-1]
		if h.cfg.Secrets == nil {
			if rerr == nil {
				rerr = fmt.Errorf("%s names secret %s, but no secret store is configured: %w", what, ref, ErrNoSecret)
			}
			return ""
		}
		val, err := h.cfg.Secrets.Secret(ctx, ref)
		if err != nil && rerr == nil {
			rerr = fmt.Errorf("%s: secret %s: %w", what, ref, err)
		}
		return val
	})
	return out, rerr
}

// cacheHeaders returns what of a source's request names the cache entry
// of its URL: its headers as published (secret references, not values)
// and the basic auth user, whose view of the URL may differ.
func cacheHeaders(src wire.Source) map[string]string {
	if src.Auth == nil || src.Auth.Basic == nil {
		return src.Headers
	}
	out := make(map[string]string, len(src.Headers)+1)
	for k, v := range src.Headers {
		out[k] = v
	}
	out["x-trainfeed-basic-user"] = src.Auth.Basic.User
	return out
}
