package faulttest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/cluster"
)

func TestExpTopo(t *testing.T) {
	cl := cluster.StartProcesses(t, natsdBin, 3)
	urls := cl.URLs()
	common := []string{"--nats", urls, "--ack-wait", "5s", "--log-level", "debug"}
	args := func(a ...string) []string { return append(a, common...) }
	ms := []*member{start(t, "combine", args("combine", "--out", t.TempDir())...),
		start(t, "transform-1", args("transform")...),
		start(t, "fetch-1", args("fetch")...)}
	time.Sleep(15 * time.Second)
	nc, _ := nats.Connect(urls)
	js, _ := jetstream.New(nc)
	l := js.ListStreams(context.Background())
	for s := range l.Info() {
		t.Log(s.Config.Name, s.Config.Replicas, s.Cluster)
	}
	t.Log(l.Err())
	for _, m := range ms {
		t.Log(m.name, m.output())
	}
}
