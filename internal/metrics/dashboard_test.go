package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/metrics"
)

// metricRef finds the trainfeed metrics a query or a doc names.
var metricRef = regexp.MustCompile(`trainfeed_[a-z_]+`)

// base strips a histogram series suffix.
func base(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			return b
		}
	}
	return name
}

// Every metric the Grafana dashboard queries exists, and every panel
// queries one.
func TestDashboardQueriesMetricsThatExist(t *testing.T) {
	names := map[string]bool{}
	for _, n := range metrics.New(metrics.Config{}).Names() {
		names[n] = true
	}
	require.Contains(t, names, "trainfeed_dataset_freshness_seconds")

	data, err := os.ReadFile("../../docs/grafana/trainfeed.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			refs := metricRef.FindAllString(tg.Expr, -1)
			require.NotEmpty(t, refs, "%s: %s", p.Title, tg.Expr)
			for _, r := range refs {
				require.True(t, names[base(r)], "panel %q queries %s, which trainfeed does not export", p.Title, r)
			}
		}
	}
}

// docs/serve.md's metrics table lists every metric trainfeed exports,
// and nothing else.
func TestServeDocListsEveryMetric(t *testing.T) {
	data, err := os.ReadFile("../../docs/serve.md")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `trainfeed_") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		for _, n := range metricRef.FindAllString(first, -1) {
			documented[n] = true
		}
	}
	for _, n := range metrics.New(metrics.Config{}).Names() {
		require.True(t, documented[n], "docs/serve.md does not list %s", n)
		delete(documented, n)
	}
	require.Empty(t, documented, "docs/serve.md lists metrics trainfeed does not export")
}
