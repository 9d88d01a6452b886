package main

import (
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/trainfeed/trainfeed/internal/natsconn"
)

// natsFlags registers the connection flags every command that talks to an
// external NATS shares. Defaults come from TRAINFEED_NATS_* variables.
func natsFlags(fl *pflag.FlagSet) *natsconn.Options {
	o := &natsconn.Options{}
	env := os.Getenv
	fl.StringVar(&o.URLs, "nats", env("TRAINFEED_NATS_URL"), "NATS server URL(s), comma-separated (env TRAINFEED_NATS_URL)")
	fl.StringVar(&o.Creds, "creds", env("TRAINFEED_NATS_CREDS"), "NATS credentials file (env TRAINFEED_NATS_CREDS)")
	fl.StringVar(&o.NKeySeed, "nkey", env("TRAINFEED_NATS_NKEY"), "file holding an NKey seed (env TRAINFEED_NATS_NKEY)")
	fl.StringVar(&o.Token, "token", env("TRAINFEED_NATS_TOKEN"), "NATS auth token (env TRAINFEED_NATS_TOKEN)")
	fl.StringVar(&o.User, "user", env("TRAINFEED_NATS_USER"), "NATS user (env TRAINFEED_NATS_USER)")
	fl.StringVar(&o.Password, "password", env("TRAINFEED_NATS_PASSWORD"), "NATS password (env TRAINFEED_NATS_PASSWORD)")
	fl.StringVar(&o.TLSCA, "tls-ca", env("TRAINFEED_NATS_TLS_CA"), "CA certificate (PEM) to trust (env TRAINFEED_NATS_TLS_CA)")
	fl.StringVar(&o.TLSCert, "tls-cert", env("TRAINFEED_NATS_TLS_CERT"), "client certificate (PEM) for mutual TLS (env TRAINFEED_NATS_TLS_CERT)")
	fl.StringVar(&o.TLSKey, "tls-key", env("TRAINFEED_NATS_TLS_KEY"), "client key (PEM) for mutual TLS (env TRAINFEED_NATS_TLS_KEY)")
	return o
}

// connectJS connects to NATS with o under the given connection name and
// returns the connection (the caller closes it) and its JetStream context.
func connectJS(o natsconn.Options, name string) (*nats.Conn, jetstream.JetStream, error) {
	o.Name = name
	nc, err := natsconn.Connect(o)
	if err != nil {
		return nil, nil, err
	}
	js, err := natsconn.JetStream(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
