package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// InProcessCluster is a cluster of nats-servers running in the test process.
type InProcessCluster struct {
	tb      testing.TB
	Nodes   []*Node
	Servers []*server.Server // nil while a member is shut down
	conf    []string
}

// InProcess starts n clustered JetStream servers in this process, waits until
// they are routed to each other and place replicated streams, and shuts them
// down when the test ends.
func InProcess(tb testing.TB, n int) *InProcessCluster {
	tb.Helper()
	c := StartInProcess(tb, n)
	c.WaitReady(30 * time.Second)
	return c
}

// StartInProcess is InProcess without the wait: it returns once every
// server accepts clients, while the cluster has no JetStream meta leader yet.
func StartInProcess(tb testing.TB, n int) *InProcessCluster {
	tb.Helper()
	dir := tb.TempDir()
	c := &InProcessCluster{tb: tb, Nodes: nodes(tb, n, dir), Servers: make([]*server.Server, n)}
	for _, nd := range c.Nodes {
		path := filepath.Join(dir, nd.Name+".conf")
		if err := os.WriteFile(path, []byte(Config(nd, c.Nodes)), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.conf = append(c.conf, path)
	}
	for i := range c.Nodes {
		c.start(i)
	}
	tb.Cleanup(func() {
		for i := range c.Servers {
			c.Shutdown(i)
		}
	})
	return c
}

// URLs returns every member's client URL, comma-separated.
func (c *InProcessCluster) URLs() string { return urls(c.Nodes) }

func (c *InProcessCluster) start(i int) {
	c.tb.Helper()
	opts, err := server.ProcessConfigFile(c.conf[i])
	if err != nil {
		c.tb.Fatalf("cluster %s: %v", c.Nodes[i].Name, err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		c.tb.Fatalf("cluster %s: %v", c.Nodes[i].Name, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		c.tb.Fatalf("cluster %s: not ready for connections", c.Nodes[i].Name)
	}
	c.Servers[i] = ns
}

// Shutdown stops member i and waits until it has stopped.
func (c *InProcessCluster) Shutdown(i int) {
	if ns := c.Servers[i]; ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Restart starts member i again on its store and ports.
func (c *InProcessCluster) Restart(i int) {
	c.tb.Helper()
	c.Shutdown(i)
	c.start(i)
}

// WaitReady waits until every running member sees all running members'
// client URLs and reports JetStream healthy, and the meta leader counts every
// running member as a current peer.
func (c *InProcessCluster) WaitReady(timeout time.Duration) {
	c.tb.Helper()
	running := 0
	for _, ns := range c.Servers {
		if ns != nil {
			running++
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		ready, led := true, false
		for i, ns := range c.Servers {
			if ns == nil {
				continue
			}
			v, err := ns.Varz(nil)
			if err != nil || len(v.ClientConnectURLs) < running {
				ready = false
				break
			}
			if h := ns.Healthz(&server.HealthzOptions{JSMetaOnly: true}); h.Status != "ok" {
				ready = false
				break
			}
			var j jsz
			if info, err := ns.Jsz(nil); err == nil {
				data, _ := json.Marshal(info)
				_ = json.Unmarshal(data, &j)
			}
			led = led || j.metaReady(c.Nodes[i].Name, running)
		}
		if ready && led && placeable(c.URLs(), running) {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("cluster not ready after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
