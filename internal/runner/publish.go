package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stage's output goes through Publish or PublishAsync, as its input's
// acks go through the runner: each message carries its Nats-Msg-Id (see
// wire's ids), so publishing it again stores nothing twice, and while the
// stream it goes to is full the message is held and published again, the
// work that made it kept (WhileFull).

// Publish publishes data to subject with Nats-Msg-Id id and waits for
// JetStream's ack, each try bounded by timeout. While the stream is full
// it holds the message and tries again; full, if not nil, is called once,
// at the first full stream.
func Publish(ctx context.Context, js jetstream.JetStream, subject string, data []byte, id string, timeout time.Duration, full func(error)) error {
	return WhileFull(ctx, func() error {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := js.Publish(rctx, subject, data, jetstream.WithMsgID(id))
		return err
	}, full)
}

// Pending is a message published without waiting for its ack.
type Pending struct {
	js          jetstream.JetStream
	subject, id string
	data        []byte
	ack         jetstream.PubAckFuture
}

// PublishAsync publishes data to subject with Nats-Msg-Id id and returns
// at once: Wait waits for the ack. The JetStream context bounds how many
// are in flight and how long an ack may take (natsconn.JetStream).
func PublishAsync(js jetstream.JetStream, subject string, data []byte, id string) (*Pending, error) {
	p := &Pending{js: js, subject: subject, id: id, data: data}
	if err := p.send(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pending) send() error {
	ack, err := p.js.PublishAsync(p.subject, p.data, jetstream.WithMsgID(p.id))
	if err != nil {
		return fmt.Errorf("publish to %s: %w", p.subject, err)
	}
	p.ack = ack
	return nil
}

// Wait waits for p's ack. While the stream is full it publishes p again
// after a while, until there is room or ctx ends; full, if not nil, is
// called once, at the first full stream.
func (p *Pending) Wait(ctx context.Context, full func(error)) error {
	resend := false
	return WhileFull(ctx, func() error {
		if resend {
			if err := p.send(); err != nil {
				return err
			}
		}
		resend = true
		select {
		case <-p.ack.Ok():
			return nil
		case err := <-p.ack.Err():
			return fmt.Errorf("publish to %s: %w", p.subject, err)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}, full)
}
