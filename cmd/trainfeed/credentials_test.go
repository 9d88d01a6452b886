package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Sources name their credentials (${env:…}, ${file:…}) instead of holding
// them: the fetch stage resolves them for the request only, so after a
// run whose authenticated sources succeed, are refused and fail, no secret
// value is anywhere in the JetStream store, the output or the logs; and
// `dlq show` redacts a credential a source still carried inline.
func TestCredentialsNeverLeaveTheFetchStage(t *testing.T) {
	const token, apiKey, password, inline = "tok-7f3a9c2e1b", "key-5d8e0a4c6f", "pw-3e8d1a7c5b", "inline-9b2c7e1d3a"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, basic := r.BasicAuth()
		ok := r.Header.Get("Authorization") == "Bearer "+token || r.Header.Get("X-Api-Key") == apiKey ||
			(basic && user == "ann" && pw == password)
		if !ok || strings.HasPrefix(r.URL.Path, "/denied") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "id,path\n1,%s\n2,%s\n", r.URL.Path, r.URL.Path)
	}))
	defer srv.Close()

	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	require.NoError(t, os.Mkdir(secrets, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "apikey"), []byte(apiKey+"\n"), 0o600))
	line := func(path string, headers map[string]string) string {
		b, err := json.Marshal(map[string]any{"url": srv.URL + path, "dataset": "api", "headers": headers})
		require.NoError(t, err)
		return string(b) + "\n"
	}
	basicLine := `{"url": "` + srv.URL + `/basic.csv", "dataset": "api", "auth": {"basic": {"user": "ann", "password": "${env:BASIC_PW}"}}}` + "\n"
	sources := line("/a.csv", map[string]string{"Authorization": "Bearer ${env:API_TOKEN}"}) +
		line("/b.csv", map[string]string{"X-Api-Key": "${file:apikey}"}) +
		line("/denied.csv", map[string]string{"Authorization": "Bearer ${env:API_TOKEN}"}) +
		line("/c.csv", map[string]string{"Authorization": "Bearer ${env:MISSING}"}) + basicLine
	writeFiles(t, dir, map[string]string{"sources.txt": sources})
	out := filepath.Join(dir, "out")

	run := exec.Command(bin, "run", "--sources", "sources.txt", "--out", out, "--allow-private",
		"--secrets-dir", secrets, "--log-level", "debug", "-q")
	run.Dir = dir
	run.Env = append(os.Environ(), "TRAINFEED_SECRET_API_TOKEN="+token, "TRAINFEED_SECRET_BASIC_PW="+password)
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	err := run.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "two sources fail: %s", stdout.String())
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, stdout.String(), "sources: 3 ok, 2 failed")
	require.Contains(t, stdout.String(), "TRAINFEED_SECRET_MISSING is not set", "the missing secret is named")

	// No secret value anywhere: the store folder, every output file, the logs.
	logs := stdout.String() + stderr.String()
	for _, secret := range []string{token, apiKey, password} {
		require.NotContains(t, logs, secret)
		require.NoError(t, filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.False(t, bytes.Contains(data, []byte(secret)), "%s holds a secret value", path)
			return nil
		}))
	}

	// A source that carries its credential inline is dead-lettered;
	// dlq show, in text and JSON, redacts it.
	p := startServe(t, "--store", filepath.Join(out, ".jetstream"), "--out", out)
	req := `{"url": "` + srv.URL + `/denied/inline.csv", "dataset": "api", "headers": {"Authorization": "Bearer ` + inline + `"}}`
	resp, _ := p.postSources(t, req)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	var shown string
	require.Eventually(t, func() bool {
		list, code := trainfeed(t, dir, "dlq", "list", "--nats", p.nats)
		if code != 0 || !strings.Contains(list, "inline.csv") {
			return false
		}
		var all []string
		for id := 1; id <= 3; id++ {
			text, _ := trainfeed(t, dir, "dlq", "show", fmt.Sprint(id), "--nats", p.nats)
			js, _ := trainfeed(t, dir, "dlq", "show", fmt.Sprint(id), "--json", "--nats", p.nats)
			all = append(all, text, js)
		}
		shown = strings.Join(all, "\n")
		return strings.Contains(shown, "inline.csv")
	}, 30*time.Second, 200*time.Millisecond)
	for _, secret := range []string{token, apiKey, password, inline} {
		require.NotContains(t, shown, secret)
	}
	require.Contains(t, shown, "[redacted]")
	require.Contains(t, shown, "${env:API_TOKEN}", "a reference is shown: it is not a secret")
	p.stop(t, 30*time.Second)
}
