package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// get returns the status code and body of GET url, or 0 when nothing
// answers.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Each stage member, and serve, serves /metrics, /healthz and /readyz on --http;
// /readyz turns unready while its NATS server is down and ready again once
// the member has reconnected.
func TestStageMembersServeHealth(t *testing.T) {
	dir := t.TempDir()
	_, portText, err := net.SplitHostPort(opsAddr(t))
	require.NoError(t, err)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)
	ns := natstest.ServerAt(t, dir, port)
	url := ns.ClientURL()

	addrs := map[string]string{}
	for _, stage := range []string{"fetch", "transform", "combine"} {
		addr := opsAddr(t)
		args := []string{stage, "--nats", url, "--http", addr}
		if stage == "combine" {
			args = append(args, "--out", t.TempDir())
		}
		p := startProc(t, stage, nil, args...)
		p.WaitOutput(t, "member of consumer", 20*time.Second)
		addrs[stage] = "http://" + addr
	}
	// serve, joining the same NATS, answers the same.
	serveHTTP := opsAddr(t)
	srv := startProc(t, "serve", nil, "serve", "--nats", url, "--http", serveHTTP, "--out", t.TempDir(), "--stages", "transform")
	srv.WaitOutput(t, "trainfeed serve: stages", 20*time.Second)
	addrs["serve"] = "http://" + serveHTTP
	for stage, base := range addrs {
		code, body := get(t, base+"/healthz")
		require.Equal(t, http.StatusOK, code, stage)
		code, body = get(t, base+"/readyz")
		require.Equal(t, http.StatusOK, code, "%s: %s", stage, body)
		code, body = get(t, base+"/metrics")
		require.Equal(t, http.StatusOK, code, stage)
		want := stage
		if stage == "serve" {
			want = "transform"
		}
		require.Contains(t, body, `trainfeed_stage_ack_window{stage="`+want+`"}`, stage)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	for stage, base := range addrs {
		require.Eventually(t, func() bool {
			code, body := get(t, base+"/readyz")
			return code == http.StatusServiceUnavailable && strings.Contains(body, "not ready")
		}, 20*time.Second, 50*time.Millisecond, "%s stays ready without NATS", stage)
		code, _ := get(t, base+"/healthz")
		require.Equal(t, http.StatusOK, code, "%s is alive", stage)
	}

	natstest.ServerAt(t, dir, port) // the same server back, its store kept
	for stage, base := range addrs {
		require.Eventually(t, func() bool {
			code, _ := get(t, base+"/readyz")
			return code == http.StatusOK
		}, 30*time.Second, 50*time.Millisecond, "%s is not ready again after NATS came back", stage)
	}
}

// The group's settings are stored once, in its consumers: a member
// started with another --ack-wait keeps the stored one and says so;
// trainfeed setup is what changes it.
func TestMemberKeepsTheGroupsSettings(t *testing.T) {
	ns := natstest.Server(t)
	url := ns.ClientURL()
	_, js := natstest.Connect(t, ns)
	ackWait := func() time.Duration {
		c, err := js.Consumer(t.Context(), topology.StreamSources, topology.ConsumerFetch)
		require.NoError(t, err)
		return c.CachedInfo().Config.AckWait
	}
	_, code := trainfeed(t, t.TempDir(), "setup", "--nats", url, "--ack-wait", "30s")
	require.Equal(t, 0, code)
	require.Equal(t, 30*time.Second, ackWait())

	m := startProc(t, "fetch", nil, "fetch", "--nats", url, "--ack-wait", "10s")
	m.WaitOutput(t, "member of consumer", 20*time.Second)
	require.Contains(t, m.Output(), "keeps the group's stored setting")
	require.Contains(t, m.Output(), "stored=30s asked=10s")
	require.Equal(t, 30*time.Second, ackWait(), "the member did not rewrite it")
	require.Equal(t, 0, m.Stop(20*time.Second))

	_, code = trainfeed(t, t.TempDir(), "setup", "--nats", url, "--ack-wait", "10s")
	require.Equal(t, 0, code)
	require.Equal(t, 10*time.Second, ackWait(), "setup changes it")
}
