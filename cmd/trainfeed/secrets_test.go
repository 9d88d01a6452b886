package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/natstest"
)

// authServer starts a JetStream server that requires the token, or the
// user alice with the password.
func authServer(t *testing.T, token, password string) string {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Authorization: token,
	}
	if password != "" {
		opts.Users = []*server.User{{Username: "alice", Password: password}}
	}
	return natstest.ServerWith(t, opts).ClientURL()
}

// Tokens and passwords, right or wrong, in flags, URLs or the environment,
// never appear in a member's output, even at debug level.
func TestSecretsNeverLogged(t *testing.T) {
	const (
		token    = "tok-7d1f0c9e2b"
		password = "pw-4a8c6e2f1d"
		wrong    = "wrong-5e3b9a7c"
	)
	tokenURL := authServer(t, token, "")
	userURL := authServer(t, "", password)
	hostOf := func(u string) string { return strings.TrimPrefix(u, "nats://") }
	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		joins   bool
		secrets []string
	}{
		{"token flag", nil, []string{"--nats", tokenURL, "--token", token}, true, []string{token}},
		{"token in URL", nil, []string{"--nats", "nats://" + token + "@" + hostOf(tokenURL)}, true, []string{token}},
		{"token env", []string{"TRAINFEED_NATS_TOKEN=" + token}, []string{"--nats", tokenURL}, true, []string{token}},
		{"wrong token", nil, []string{"--nats", tokenURL, "--token", wrong}, false, []string{wrong}},
		{"wrong token in URL", nil, []string{"--nats", "nats://" + wrong + "@" + hostOf(tokenURL)}, false, []string{wrong}},
		{"password flag", nil, []string{"--nats", userURL, "--user", "alice", "--password", password}, true, []string{password}},
		{"password in URL", nil, []string{"--nats", "nats://alice:" + password + "@" + hostOf(userURL)}, true, []string{password}},
		{"password env", []string{"TRAINFEED_NATS_USER=alice", "TRAINFEED_NATS_PASSWORD=" + password}, []string{"--nats", userURL}, true, []string{password}},
		{"wrong password", nil, []string{"--nats", userURL, "--user", "alice", "--password", wrong}, false, []string{wrong}},
		{"wrong password in URL", nil, []string{"--nats", "nats://alice:" + wrong + "@" + hostOf(userURL)}, false, []string{wrong}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the refused ones each wait out the connect timeout
			args := append([]string{"--log-level", "debug", "--log-format", "json", "fetch"}, tc.args...)
			p := startProc(t, "fetch", tc.env, args...)
			if tc.joins {
				p.WaitOutput(t, "member of consumer", 20*time.Second)
				assert.Equal(t, 0, p.Stop(10*time.Second))
			} else {
				assert.Equal(t, 2, p.Wait(30*time.Second))
				assert.Contains(t, p.Output(), "cannot reach")
			}
			out := p.Output()
			for _, s := range tc.secrets {
				assert.NotContains(t, out, s, "the secret is in the output:\n%s", out)
			}
		})
	}
}

// A token given in the URL stays hidden in the reconnect log line too.
func TestSecretsNotLoggedOnReconnect(t *testing.T) {
	const token = "tok-0b3d5f7a9c"
	port := freePort(t)
	host, p, _ := strings.Cut(port, ":")
	portN := 0
	_, err := fmt.Sscan(p, &portN)
	require.NoError(t, err)
	dir := t.TempDir()
	start := func() *server.Server {
		return natstest.ServerWith(t, &server.Options{Host: host, Port: portN, JetStream: true, StoreDir: dir,
			NoSigs: true, NoLog: true, Authorization: token})
	}
	ns := start()
	m := startProc(t, "fetch", nil, "--log-level", "debug", "fetch", "--nats", "nats://"+token+"@"+port)
	m.WaitOutput(t, "member of consumer", 20*time.Second)
	ns.Shutdown()
	ns.WaitForShutdown()
	start()
	m.WaitOutput(t, "nats reconnected", 20*time.Second)
	assert.Equal(t, 0, m.Stop(10*time.Second))
	assert.NotContains(t, m.Output(), token)
	assert.Contains(t, m.Output(), "REDACTED")
}
