package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// flagRef finds a long flag in text.
var flagRef = regexp.MustCompile(`--[a-z][a-z0-9-]*`)

// otherTools' flags appear in the docs' commands for docker compose.
var otherTools = map[string]bool{"--build": true, "--rm": true, "--scale": true}

// Every flag the README and the docs name is a flag of some trainfeed
// command: the docs and the code agree.
func TestDocsNameOnlyFlagsThatExist(t *testing.T) {
	commands := [][]string{{}, {"run"}, {"serve"}, {"fetch"}, {"transform"}, {"combine"}, {"setup"}, {"publish"},
		{"status"}, {"follow"}, {"rebuild"}, {"bench"}, {"lint"}, {"dlq"}, {"dlq", "list"}, {"dlq", "show"},
		{"dlq", "replay"}, {"dlq", "purge"}}
	exists := map[string]bool{"--help": true}
	for _, c := range commands {
		out, err := exec.Command(bin, append(c, "--help")...).CombinedOutput()
		require.NoError(t, err, "%v --help: %s", c, out)
		for _, f := range flagRef.FindAllString(string(out), -1) {
			exists[f] = true
		}
	}
	docs, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	for _, path := range append(docs, "../../README.md") {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		for i, line := range strings.Split(string(data), "\n") {
			for _, f := range flagRef.FindAllString(line, -1) {
				if !exists[f] && !otherTools[f] {
					t.Errorf("%s:%d names %s, which no trainfeed command has", filepath.Base(path), i+1, f)
				}
			}
		}
	}
}
