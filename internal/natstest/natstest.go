// Package natstest starts real, in-process nats-servers with JetStream for
// tests.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Server starts a JetStream-enabled nats-server on a random loopback port
// with its store in a test temp dir, and stops it when the test ends.
func Server(tb testing.TB) *server.Server {
	tb.Helper()
	return ServerAt(tb, tb.TempDir(), -1)
}

// ServerAt starts a server with its store in dir on port (-1: random), so a
// test can restart a server on the same store.
func ServerAt(tb testing.TB, dir string, port int) *server.Server {
	tb.Helper()
	return ServerWith(tb, &server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
		MaxPayload: 2 << 20,
	})
}

// ServerWith starts a server with opts (authorization, accounts, a
// configuration file's), waits until it is ready, and stops it when the test
// ends.
func ServerWith(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	ns, err := server.NewServer(opts)
	require.NoError(tb, err)
	go ns.Start()
	require.True(tb, ns.ReadyForConnections(10*time.Second), "nats-server not ready")
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Connect returns a connection and JetStream context to ns, closed when the test ends.
func Connect(tb testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	return nc, js
}
