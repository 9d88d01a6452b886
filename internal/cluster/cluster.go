// Package cluster starts real nats-server clusters with JetStream on loopback
// ports for tests: in-process servers (InProcess), or child processes that a
// test can kill with SIGKILL and restart on the same store (StartProcesses).
package cluster

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Name is the cluster name every helper's servers share.
const Name = "trainfeed-test"

// Node is one cluster member: its name, loopback ports and store folder. The
// ports stay the same across restarts, so clients and routes find it again.
type Node struct {
	Name        string
	Port        int // client port
	ClusterPort int // route port
	HTTPPort    int // monitoring port
	StoreDir    string
}

// ClientURL returns the URL clients connect to.
func (n *Node) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// nodes lays out n members under dir with free loopback ports.
func nodes(tb testing.TB, n int, dir string) []*Node {
	tb.Helper()
	ports := FreePorts(tb, 3*n)
	out := make([]*Node, n)
	for i := range out {
		out[i] = &Node{
			Name:        fmt.Sprintf("n%d", i+1),
			Port:        ports[3*i],
			ClusterPort: ports[3*i+1],
			HTTPPort:    ports[3*i+2],
			StoreDir:    filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
		}
	}
	return out
}

// routes returns every member's route URL.
func routes(ns []*Node) []string {
	var r []string
	for _, n := range ns {
		r = append(r, fmt.Sprintf("nats-route://127.0.0.1:%d", n.ClusterPort))
	}
	return r
}

// urls joins the client URLs of ns with commas, as --nats takes them.
func urls(ns []*Node) string {
	var u []string
	for _, n := range ns {
		u = append(u, n.ClientURL())
	}
	return strings.Join(u, ",")
}

// Config returns the nats-server configuration file text of member self of
// the cluster ns.
func Config(self *Node, ns []*Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\n", self.Name)
	fmt.Fprintf(&b, "listen: \"127.0.0.1:%d\"\n", self.Port)
	fmt.Fprintf(&b, "http: \"127.0.0.1:%d\"\n", self.HTTPPort)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 8GB\n}\n", self.StoreDir)
	fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", Name, self.ClusterPort)
	for _, r := range routes(ns) {
		fmt.Fprintf(&b, "    %q\n", r)
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// jsz is the part of a server's /jsz monitoring answer that tells whether
// its JetStream meta group is complete.
type jsz struct {
	Meta *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

// metaReady reports whether the server named self leads a meta group in
// which at least running-1 other peers are online and current: only then
// does the cluster place a replicated stream on any running member.
func (j *jsz) metaReady(self string, running int) bool {
	if j.Meta == nil || j.Meta.Leader != self {
		return false
	}
	current := 0
	for _, r := range j.Meta.Replicas {
		if r.Current && !r.Offline {
			current++
		}
	}
	return current >= running-1
}

// placeable reports whether the cluster at urls places a stream with one
// replica per running member (at most 3): a meta leader that knows every peer
// may still call one offline until that peer's first statistics arrive.
func placeable(urls string, running int) bool {
	nc, err := nats.Connect(urls, nats.Timeout(time.Second))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	const probe = "CLUSTER_READY_PROBE"
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: probe, Subjects: []string{"cluster.ready.probe"}, Replicas: min(running, 3), Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return false
	}
	return js.DeleteStream(ctx, probe) == nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are free when
// it returns; another process may take one before it is used, which on a test
// machine is rare enough.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
