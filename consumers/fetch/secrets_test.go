package fetch

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/runner"
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
	got, err := h.resolveHeaders(ctx, "x", in)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"Authorization": "Bearer t0k", "X-Api-Key": "k3y", "Accept": "text/csv"}, got)
	require.Equal(t, "Bearer ${env:TOKEN}", in["Authorization"], "the source is not changed")

	_, err = h.resolveHeaders(ctx, "x", map[string]string{"Authorization": "Bearer ${env:NOPE}"})
	require.ErrorIs(t, err, ErrNoSecret)
	require.True(t, runner.IsPermanent(err))
	require.ErrorContains(t, err, "env:NOPE")

	none := &Handler{}
	_, err = none.resolveHeaders(ctx, "x", map[string]string{"A": "${env:TOKEN}"})
	require.True(t, errors.Is(err, ErrNoSecret))
	require.ErrorContains(t, err, "no secret store is configured")
	plain := map[string]string{"Accept": "text/csv"}
	got, err = none.resolveHeaders(ctx, "x", plain)
	require.NoError(t, err)
	require.Equal(t, plain, got)
}
