// Package natsconn connects trainfeed processes to a NATS server or cluster
// with the authentication and TLS options nats.go supports, reconnecting
// through server restarts.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Options say where and how to connect. Secrets are never logged.
type Options struct {
	// URLs is a comma-separated list of server URLs.
	URLs string
	// Name identifies the connection in server monitoring.
	Name string
	// Creds is a NATS credentials file (JWT + NKey seed).
	Creds string
	// NKeySeed is a file holding an NKey seed.
	NKeySeed string
	// Token, User and Password authenticate without credentials files.
	Token, User, Password string
	// TLSCA, TLSCert and TLSKey are PEM files: the CA to trust, and a client
	// certificate and key for mutual TLS.
	TLSCA, TLSCert, TLSKey string
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports options that cannot work together.
func (o Options) Validate() error {
	if o.URLs == "" {
		return errors.New("nats: no server URL (--nats or TRAINFEED_NATS_URL)")
	}
	for _, u := range strings.Split(o.URLs, ",") {
		if _, err := url.Parse(strings.TrimSpace(u)); err != nil {
			return fmt.Errorf("nats: server URL: %w", err)
		}
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("nats: a TLS client certificate needs both --tls-cert and --tls-key")
	}
	n := 0
	for _, set := range []bool{o.Creds != "", o.NKeySeed != "", o.Token != "", o.User != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("nats: use one of --creds, --nkey, --token or --user")
	}
	return nil
}

// LogEvents returns the options that log a connection's events to log: a
// disconnection with an error, a reconnection, and asynchronous errors such
// as a slow consumer's dropped messages.
func LogEvents(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: the connection was closed
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "server", ServerURL(nc)) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("nats", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("nats", "err", err)
		}),
	}
}

// Connect connects with o. The connection retries its first connect and
// reconnects forever; callers close it.
func Connect(o Options) (*nats.Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	name := o.Name
	if name == "" {
		name = "trainfeed"
	}
	opts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
	}, LogEvents(log)...)
	switch {
	case o.Creds != "":
		opts = append(opts, nats.UserCredentials(o.Creds))
	case o.NKeySeed != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nats: nkey seed: %w", err)
		}
		opts = append(opts, opt)
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(o.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", redact(o.URLs), err)
	}
	// RetryOnFailedConnect returns at once; wait briefly so a wrong URL is
	// reported instead of hanging.
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !nc.IsConnected() {
		nc.Close()
		return nil, fmt.Errorf("nats: cannot reach %s", redact(o.URLs))
	}
	return nc, nil
}

// ServerURL returns the URL of the server nc is connected to, fit for logs:
// unlike nc.ConnectedUrlRedacted it also hides a token given as the URL's
// user part (nats://TOKEN@host).
func ServerURL(nc *nats.Conn) string {
	u := nc.ConnectedUrl()
	if u == "" {
		return ""
	}
	return redact(u)
}

// redact hides passwords and tokens in URLs.
func redact(urls string) string {
	var out []string
	for _, s := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil {
			out = append(out, "<invalid url>")
			continue
		}
		if u.User != nil {
			if _, hasPassword := u.User.Password(); !hasPassword {
				u.User = url.User("REDACTED") // a bare user part is a token
			}
		}
		out = append(out, u.Redacted())
	}
	return strings.Join(out, ",")
}
