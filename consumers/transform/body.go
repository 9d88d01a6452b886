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

	"github.com/trainfeed/trainfeed/internal/objects"
)

// bodyPull is how many chunks (128 KiB each by default) of a body the
// reader asks for at a time. ObjectStore.Get instead lets the server push a
// body with up to 32 MiB in flight, which the client buffers when parsing is
// slower than the network: per source, that is what bounds memory.
const bodyPull = 8

// directChunks is the largest body, in chunks, read with direct gets: one
// request per chunk and no consumer at all. Larger bodies stream through an
// ordered consumer. Most bodies are one chunk; creating a consumer for each
// would cost round trips and, at a few hundred bodies a second, run into the
// server's limit of consumers per stream while the old ones wait out their
// inactivity threshold.
const directChunks = 8

// orderedInactive is how soon the server removes a body's ordered consumer
// that nobody reads (nats.go's default is 5 minutes): its reader crashed.
// A reader that is done deletes it at once. It is long enough for a reader
// to pause between chunks — parsing is slower than reading, and the
// consumer has no pull request while the reader works through what it has
// — without the server removing the consumer under it (which costs a 10 s
// stall until the ordered consumer notices and recreates it).
const orderedInactive = time.Minute

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
	stream := objects.StreamName(info.Bucket)
	subject := objects.ChunkSubject(info.Bucket, info.NUID)
	r := &bodyReader{ctx: ctx, size: info.Size, want: want, sum: sha256.New()}
	if info.Chunks <= directChunks {
		s, err := h.stream(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("body %s: %w", name, err)
		}
		r.next = directChunk(s, subject)
		return r, nil
	}
	cons, err := h.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		InactiveThreshold: orderedInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("body %s: %w", name, err)
	}
	// Short pulls with frequent heartbeats: when a pull goes unanswered
	// (seen now and then on a busy machine), the ordered consumer notices
	// after two missed heartbeats and starts again where it was, in about a
	// second instead of the default ten.
	it, err := cons.Messages(jetstream.PullMaxMessages(bodyPull),
		jetstream.PullExpiry(2*time.Second), jetstream.PullHeartbeat(500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("body %s: %w", name, err)
	}
	r.next = func(ctx context.Context) ([]byte, error) {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		return m.Data(), nil
	}
	r.stop = func() {
		it.Stop()
		// The server would keep the consumer for orderedInactive; with many
		// large bodies that runs into its limit of consumers per stream.
		info := cons.CachedInfo()
		if info == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := h.js.DeleteConsumer(ctx, stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			h.cfg.Logger.Debug("delete body consumer", "stream", stream, "err", err)
		}
	}
	return r, nil
}

// stream returns the bodies bucket's stream, looked up once.
func (h *Handler) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	h.streamMu.Lock()
	defer h.streamMu.Unlock()
	if h.bodyStream == nil {
		s, err := h.js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		h.bodyStream = s
	}
	return h.bodyStream, nil
}

// directChunk returns a function that reads a body's chunks one direct get
// at a time: each is the first message on subject after the previous one.
func directChunk(s jetstream.Stream, subject string) func(context.Context) ([]byte, error) {
	seq := uint64(1)
	return func(ctx context.Context) ([]byte, error) {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return nil, err
		}
		seq = m.Sequence + 1
		return m.Data, nil
	}
}

// bodyReader reads the chunks of one body in order.
type bodyReader struct {
	ctx  context.Context
	next func(context.Context) ([]byte, error) // the body's next chunk
	stop func()                                // ends the reading, if set
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
		chunk, err := r.next(ctx)
		cancel()
		if err != nil {
			if r.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no chunk for %s after %d of %d bytes", bodyIdle, r.n, r.size)
			}
			r.err = fmt.Errorf("read body: %w", err)
			continue
		}
		r.cur = chunk
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

// Close stops the reading.
func (r *bodyReader) Close() error {
	if r.stop != nil {
		r.stop()
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
