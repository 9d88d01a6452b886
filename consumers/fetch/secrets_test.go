package fetch

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// mapSecrets is a Secrets of fixed values, for the substitution rules;
// the real store (env and files) is tested with the CLI.
type mapSecrets map[string]string

func (m mapSecrets) Secret(_ context.Context, ref string) (string, error) {
	if v, ok := m[ref]; ok {
		return v, nil
	}
	return "", ErrNoSecret
}

func TestResolveHeaders(t *testing.T) {
	h := &Handler{cfg: Config{Secrets: mapSecrets{"env:TOKEN": "t0k", "file:key": "k3y"}}}
	ctx := context.Background()
	in := map[string]string{"Authorization": "Bearer ${env:TOKEN}", "X-Api-Key": "${file:key}", "Accept": "text/csv"}
	got, err := h.resolveHeaders(ctx, "x", wire.Source{Headers: in})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"Authorization": "Bearer t0k", "X-Api-Key": "k3y", "Accept": "text/csv"}, got)
	require.Equal(t, "Bearer ${env:TOKEN}", in["Authorization"], "the source is not changed")

	_, err = h.resolveHeaders(ctx, "x", wire.Source{Headers: map[string]string{"Authorization": "Bearer ${env:NOPE}"}})
	require.ErrorIs(t, err, ErrNoSecret)
	require.True(t, runner.IsPermanent(err))
	require.ErrorContains(t, err, "env:NOPE")

	none := &Handler{}
	_, err = none.resolveHeaders(ctx, "x", wire.Source{Headers: map[string]string{"A": "${env:TOKEN}"}})
	require.True(t, errors.Is(err, ErrNoSecret))
	require.ErrorContains(t, err, "no secret store is configured")
	plain := map[string]string{"Accept": "text/csv"}
	got, err = none.resolveHeaders(ctx, "x", wire.Source{Headers: plain})
	require.NoError(t, err)
	require.Equal(t, plain, got)

	// Basic auth: the user and the resolved password, encoded.
	basic := wire.Source{Headers: plain, Auth: &wire.SourceAuth{Basic: &wire.BasicAuth{User: "ann", Password: "${file:key}"}}}
	got, err = h.resolveHeaders(ctx, "x", basic)
	require.NoError(t, err)
	require.Equal(t, "Basic YW5uOmszeQ==", got["Authorization"]) // ann:k3y
	require.NotContains(t, plain, "Authorization", "the source is not changed")
	basic.Headers = map[string]string{"authorization": "Bearer x"}
	_, err = h.resolveHeaders(ctx, "x", basic)
	require.ErrorContains(t, err, "auth.basic and an Authorization header")
	require.NotEqual(t, urlKey("u", cacheHeaders(wire.Source{Auth: basic.Auth})), urlKey("u", nil), "users have cache entries of their own")
}
