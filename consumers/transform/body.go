package transform

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// bodyPull is how many chunks (128 KiB each by default) of a body the
// reader asks for at a time. ObjectStore.Get instead lets the server push a
// body with up to 32 MiB in flight, which the client buffers when parsing is
// slower than the network: per source, that is what bounds memory.
const bodyPull = 8

// bodyIdle bounds the wait for the next chunk of a body.
const bodyIdle = 30 * time.Second

// errBodyDigest reports a body whose bytes do not match its digest.
var errBodyDigest = errors.New("body does not match its sha-256 digest")

// openBody streams the body stored under name with an ordered pull
// consumer that holds at most bodyPull chunks, and checks its size and
// SHA-256 digest at the end. A link falls back to ObjectStore.Get.
func (h *Handler) openBody(ctx context.Context, name string) (io.ReadCloser, error) {
	info, err := h.bodies.GetInfo(ctx, name)
	if err != nil {
		return nil, err
	}
	if info.Opts != nil && info.Opts.Link != nil {
		return h.bodies.Get(ctx, name)
	}
	if info.Size == 0 {
		return io.NopCloser(eofReader{}), nil
	}
	want, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil {
		return nil, fmt.Errorf("body %s: %w", name, err)
	}
	stream := "OBJ_" + info.Bucket
	cons, err := h.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$O." + info.Bucket + ".C." + info.NUID},
	})
	if err != nil {
		return nil, fmt.Errorf("body %s: %w", name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(bodyPull))
	if err != nil {
		return nil, fmt.Errorf("body %s: %w", name, err)
	}
	return &bodyReader{ctx: ctx, it: it, size: info.Size, want: want, sum: sha256.New()}, nil
}

// bodyReader reads the chunks of one body in order.
type bodyReader struct {
	ctx  context.Context
	it   jetstream.MessagesContext
	size uint64
	n    uint64
	want []byte
	sum  hash.Hash
	cur  []byte
	err  error
}

func (r *bodyReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.n >= r.size {
			if string(r.sum.Sum(nil)) != string(r.want) {
				r.err = errBodyDigest
			} else {
				r.err = io.EOF
			}
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, bodyIdle)
		m, err := r.it.Next(jetstream.NextContext(ctx))
		cancel()
		if err != nil {
			if r.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no chunk for %s after %d of %d bytes", bodyIdle, r.n, r.size)
			}
			r.err = fmt.Errorf("read body: %w", err)
			continue
		}
		r.cur = m.Data()
		r.n += uint64(len(r.cur))
		r.sum.Write(r.cur)
		if r.n > r.size {
			r.err = fmt.Errorf("read body: %d bytes, more than its %d: %w", r.n, r.size, errBodyDigest)
			r.cur = nil
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the consumer.
func (r *bodyReader) Close() error {
	r.it.Stop()
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
