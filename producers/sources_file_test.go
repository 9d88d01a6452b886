package producers_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/producers"
)

// Every line is read on its own: a bad one gets its reason, the rest are
// sources, as the fetch stage will read them.
func TestReadSources(t *testing.T) {
	tests := []struct {
		line    string
		wantURL string
		wantErr string
	}{
		{line: "https://example.com/a.csv", wantURL: "https://example.com/a.csv"},
		{line: "http://127.0.0.1:8080/a.csv?x=1", wantURL: "http://127.0.0.1:8080/a.csv?x=1"},
		{line: "file:///data/a.csv", wantURL: "file:///data/a.csv"},
		{line: "data/a.csv", wantURL: "data/a.csv"},
		{line: "./data/a%zz.csv", wantURL: "./data/a%zz.csv"},
		{line: "/data/a:b.csv", wantURL: "/data/a:b.csv"},
		{line: `{"url": "b.jsonl", "dataset": "web", "format": "jsonl"}`, wantURL: "b.jsonl"},
		{line: "ftp://example.com/a.csv", wantErr: `unsupported scheme "ftp"`},
		{line: "mailto:someone@example.com", wantErr: `unsupported scheme "mailto"`},
		{line: "https:///a.csv", wantErr: "has no host"},
		{line: "http://exa mple.com/a.csv", wantErr: "contains spaces"},
		{line: "http://[::1/a.csv", wantErr: "not a URL or path"},
		{line: `{"url": "ftp://x/y.csv"}`, wantErr: `unsupported scheme "ftp"`},
		{line: `{"url": ""}`, wantErr: "has no url"},
		{line: `{"url": "a.csv", "colour": "red"}`, wantErr: "unknown field"},
		{line: `{"url": "https://x/api", "records": "data.items"}`, wantURL: "https://x/api"},
		{line: `{"url": "https://x/api", "records": "data..items"}`, wantErr: "empty key"},
		{line: `{"url": "https://x/api", "format": "csv", "records": "data"}`, wantErr: "needs a JSON document"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			es, err := producers.ReadSources(strings.NewReader("# a comment\n\n" + tt.line + "\n"))
			require.NoError(t, err)
			require.Len(t, es, 1)
			require.Equal(t, 3, es[0].Line)
			if tt.wantErr != "" {
				require.ErrorContains(t, es[0].Err, tt.wantErr)
				require.ErrorContains(t, es[0].Err, "line 3: ")
				return
			}
			require.NoError(t, es[0].Err)
			require.Equal(t, tt.wantURL, es[0].Source.URL)
		})
	}
}
