package natsconn

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishAckWait bounds the wait for the ack of an asynchronous publish: a
// publish whose ack a dying stream leader never sends fails then instead of
// holding its message forever.
const publishAckWait = 10 * time.Second

// JetStream returns nc's JetStream context with the settings every
// trainfeed process uses: up to 4096 asynchronous publishes in flight,
// each failing after publishAckWait without an ack.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(publishAckWait))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}
