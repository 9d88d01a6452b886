package wire_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/wire"
)

func TestRedactHeaders(t *testing.T) {
	in := map[string]string{
		"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "Cookie": "a=b", "X-My-Token": "t",
		"Accept": "text/csv", "X-Auth": "Bearer ${env:API_TOKEN}",
	}
	got := wire.RedactHeaders(in)
	require.Equal(t, map[string]string{
		"Authorization": wire.Redacted, "X-Api-Key": wire.Redacted, "Cookie": wire.Redacted, "X-My-Token": wire.Redacted,
		"Accept": "text/csv", "X-Auth": "Bearer ${env:API_TOKEN}",
	}, got)
	require.Equal(t, "Bearer s3cret", in["Authorization"], "the input is not changed")
	plain := map[string]string{"Accept": "text/csv"}
	require.Equal(t, plain, wire.RedactHeaders(plain))
}

func TestRedactJSON(t *testing.T) {
	in := `{"url": "http://x", "headers": {"Authorization": "Bearer s3\"cret", "accept": "text/csv", "x-api-key":"k"}, "colour": 1`
	require.Equal(t, `{"url": "http://x", "headers": {"Authorization": "[redacted]", "accept": "text/csv", "x-api-key":"[redacted]"}, "colour": 1`, wire.RedactJSON(in))
}
