package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the tests check.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   []string          `yaml:"depends_on"`
		Volumes     []string          `yaml:"volumes"`
		Profiles    []string          `yaml:"profiles"`
		Deploy      struct {
			Replicas *int `yaml:"replicas"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// interpolation matches ${NAME}, ${NAME:-default} and ${NAME:?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}`)

// readCompose parses docker-compose.yml, with ${VAR} references replaced by
// "value-of-VAR" as docker compose would from the environment.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	data = interpolation.ReplaceAll(data, []byte("value-of-$1"))
	var c composeFile
	require.NoError(t, yaml.Unmarshal(data, &c))
	require.NotEmpty(t, c.Services)
	return c
}

// The compose file runs what the issue asks for: a 3-node JetStream
// cluster, fetch ×2, transform ×2, combine ×1 and serve, from the
// Dockerfile, every member pointed at all three servers.
func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	var natsNames, urls []string
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			natsNames = append(natsNames, name)
			urls = append(urls, "nats://"+name+":4222")
		}
	}
	slices.Sort(natsNames)
	slices.Sort(urls)
	require.Equal(t, []string{"nats-1", "nats-2", "nats-3"}, natsNames)

	replicas := map[string]int{}
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			assert.Equal(t, "nats:2.12", s.Image, name)
			continue
		}
		assert.NotNil(t, s.Build, "%s is built from the Dockerfile", name)
		got := strings.Split(s.Environment["TRAINFEED_NATS_URL"], ",")
		slices.Sort(got)
		assert.Equal(t, urls, got, "%s: TRAINFEED_NATS_URL names every server", name)
		for _, d := range s.DependsOn {
			assert.Contains(t, c.Services, d, "%s depends on an unknown service", name)
		}
		if len(s.Profiles) > 0 {
			continue // a tool, not started by docker compose up
		}
		n := 1
		if s.Deploy.Replicas != nil {
			n = *s.Deploy.Replicas
		}
		replicas[args(s.Entrypoint, s.Command)[0]] += n
	}
	assert.Equal(t, map[string]int{"fetch": 2, "transform": 2, "combine": 1, "serve": 1}, replicas)

	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			require.True(t, ok, "%s: volume %q", name, v)
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				assert.Contains(t, c.Volumes, src, "%s: volume %s is not declared", name, src)
			}
		}
	}
}

// args returns a trainfeed service's arguments: the image's entrypoint is
// the binary, so a service entrypoint adds its own arguments first.
func args(entrypoint, command []string) []string {
	if len(entrypoint) > 0 {
		return append(slices.Clone(entrypoint[1:]), command...)
	}
	return command
}

// Every trainfeed service's command parses: the command exists and takes
// each flag with its value (the binary is asked for --help with the
// service's arguments, which fails on an unknown flag or a bad value).
func TestComposeCommandsMatchCLI(t *testing.T) {
	c := readCompose(t)
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			a := args(s.Entrypoint, s.Command)
			require.NotEmpty(t, a)
			if a[0] != "--help" {
				out, err := exec.Command(bin, a[0], "--help").CombinedOutput()
				require.NoError(t, err, "trainfeed has no command %q:\n%s", a[0], out)
				for _, f := range a[1:] {
					if flagName, ok := strings.CutPrefix(f, "--"); ok {
						flagName, _, _ = strings.Cut(flagName, "=")
						assert.Contains(t, string(out), "--"+flagName+" ", "trainfeed %s has no flag --%s", a[0], flagName)
					}
				}
			}
			cmd := exec.Command(bin, append(a, "--help")...)
			cmd.Env = envOf(s.Environment)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "trainfeed %s:\n%s", strings.Join(a, " "), out)
			assert.Contains(t, string(out), "Usage:")
		})
	}
}

func envOf(m map[string]string) []string {
	env := os.Environ()
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

// The NATS services' commands are valid nats-server command lines (parsed
// by nats-server's own flag parser) that form one JetStream cluster.
func TestComposeNATSCluster(t *testing.T) {
	c := readCompose(t)
	names := map[string]bool{}
	for name, s := range c.Services {
		if !strings.HasPrefix(s.Image, "nats:") {
			continue
		}
		fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		noop := func() {}
		opts, err := server.ConfigureOptions(fs, s.Command, noop, noop, noop)
		require.NoError(t, err, "%s: nats-server %s", name, strings.Join(s.Command, " "))
		assert.True(t, opts.JetStream, "%s: JetStream", name)
		assert.Equal(t, name, opts.ServerName, "%s: server name", name)
		names[opts.ServerName] = true
		assert.Equal(t, "trainfeed", opts.Cluster.Name, name)
		assert.Equal(t, 6222, opts.Cluster.Port, name)
		assert.Len(t, opts.Routes, 3, "%s: routes to every member", name)
		for _, r := range opts.Routes {
			assert.Contains(t, c.Services, r.Hostname(), "%s: route to an unknown service", name)
		}
		require.NotEmpty(t, s.Volumes, name)
		_, mount, _ := strings.Cut(s.Volumes[0], ":")
		assert.Equal(t, mount, opts.StoreDir, "%s: the JetStream store is on a volume", name)
	}
	assert.Len(t, names, 3)
}

// The Dockerfile builds a static binary in a Go 1.26 stage and runs it on a
// minimal base as a non-root user.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	var froms []string
	user := ""
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		}
	}
	require.Len(t, froms, 2, "a build stage and a runtime stage")
	assert.True(t, strings.HasPrefix(froms[0], "golang:1.26"), froms[0])
	assert.Regexp(t, `^(gcr\.io/distroless/static|scratch)`, froms[1])
	assert.Contains(t, string(data), "CGO_ENABLED=0")
	assert.Contains(t, string(data), "./cmd/trainfeed")
	require.NotEmpty(t, user, "USER")
	assert.NotContains(t, []string{"root", "0", "0:0"}, user)
}
