// Package embedded runs a nats-server with JetStream inside the trainfeed
// process, so a single binary needs nothing else.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config describes the embedded server.
type Config struct {
	// StoreDir holds JetStream's files. Required: an empty one would make
	// every embedded server share one temporary folder.
	StoreDir string
	// Listen is host:port for other processes and NATS clients; empty means
	// in-process connections only.
	Listen string
	// MaxStore caps JetStream's disk use in bytes. Default 64 GiB.
	MaxStore int64
	// MaxMemory caps JetStream's memory storage in bytes. Default 256 MiB.
	MaxMemory int64
	// ReadyTimeout bounds the wait for the server to accept connections. Default 10s.
	ReadyTimeout time.Duration
}

// Validate reports a configuration that cannot start.
func (c *Config) Validate() error {
	if c.StoreDir == "" {
		return errors.New("embedded nats: store dir is required")
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("embedded nats: listen %q: %w", c.Listen, err)
		}
	}
	return nil
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it is ready.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         "trainfeed-embedded",
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		JetStreamMaxStore:  cfg.MaxStore,
		JetStreamMaxMemory: cfg.MaxMemory,
		NoSigs:             true, // the server would otherwise trap SIGINT and os.Exit
		NoLog:              true,
		DontListen:         cfg.Listen == "",
		MaxPayload:         2 << 20,
		// Readers of large bodies use short-lived consumers; the default cap
		// of 1,000 per stream is no protection inside one process.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	}
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = 64 << 30
	}
	if opts.JetStreamMaxMemory == 0 {
		opts.JetStreamMaxMemory = 256 << 20
	}
	if cfg.Listen != "" {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen port %q: %w", port, err)
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start() // the server owns its goroutines; Shutdown stops and waits for them
	timeout := cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if !ns.ReadyForConnections(timeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after %s", timeout)
	}
	return &Server{ns: ns}, nil
}

// Connect opens a client connection to the server, in-process when it does not listen.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("trainfeed")}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect embedded nats: %w", err)
	}
	return nc, nil
}

// ClientURL returns the URL other processes use, or "" when the server does not listen.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Close shuts the server down and waits until it has stopped. JetStream
// stops first, storing its state as a shutdown does: a plain Shutdown
// would first wait 50 ms to tell cluster peers about pending pull requests,
// for a server that has none.
func (s *Server) Close() {
	if err := s.ns.ShutdownJetStream(); err != nil {
		s.ns.Errorf("shut down JetStream: %v", err)
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
