// Package runner is the one piece of trainfeed that touches acknowledgements.
// It pulls from a durable JetStream consumer through the consumer's ack
// window into a pool of workers, runs a stage's Handler on each message and
// turns the result into an ack, a delayed nak, or a dead letter and a term,
// keeping long handlers alive with in-progress signals.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// Msg is a message as a handler sees it: its content and its delivery, with
// no way to acknowledge it.
type Msg struct {
	Subject   string
	Dataset   string
	Data      []byte
	Header    nats.Header
	Delivered uint64 // 1 on the first delivery
	StreamSeq uint64
	// Stored is when the stream stored the message.
	Stored time.Time
}

// Handler handles one message. It returns nil when the message is done (and
// everything it published downstream is acknowledged by JetStream), an error
// marked Permanent when no retry can help, and any other error to have the
// message delivered again later. A Handler must be safe for concurrent use.
type Handler interface {
	Handle(ctx context.Context, m *Msg) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Msg) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Msg) error { return f(ctx, m) }

// DeadLetterFunc lets a stage add what it knows (source id, URL) to a dead letter.
type DeadLetterFunc func(m *Msg, dl *wire.DeadLetter)

// Config shapes a Runner.
type Config struct {
	// Stage names the stage in dead letters and logs.
	Stage string
	// Workers run handlers concurrently. Default: the consumer's ack window.
	Workers int
	// BackoffBase and BackoffMax bound the delay before a retry: base·2^(attempt-1)
	// with ±20% jitter, capped. Defaults 500ms and 1m.
	BackoffBase, BackoffMax time.Duration
	// Grace is how long in-flight handlers may finish after Run's context
	// ends before they are cancelled and their messages handed back. Default 10s.
	Grace time.Duration
	// Annotate, if set, adds stage knowledge to dead letters.
	Annotate DeadLetterFunc
	// Logger receives one line per failure. Default slog.Default().
	Logger *slog.Logger
	// PullMaxBytes, if positive, bounds the bytes the client buffers for the
	// workers, whatever the message count: stages with large messages keep
	// their memory bounded by it. Default: no byte bound.
	PullMaxBytes int
	// Observe, if set, is called once per handled message with what became
	// of it and how long handling took (metrics). It runs on the worker
	// goroutine after the ack, nak or term: keep it cheap and do not keep m.
	Observe func(m *Msg, outcome Outcome, took time.Duration)
}

// Outcome is what became of a handled message.
type Outcome string

// The outcomes Observe reports. They match the Stats counters: each handled
// message is counted in exactly one of Acked, Retried, DeadLettered and
// HandedBack.
const (
	OutcomeAcked        Outcome = "acked"
	OutcomeRetried      Outcome = "retried"
	OutcomeDeadLettered Outcome = "dead_lettered"
	OutcomeHandedBack   Outcome = "handed_back"
)

// Stats are a runner's counters, safe to read while it runs.
type Stats struct {
	Received, Acked, Retried, DeadLettered, HandedBack atomic.Int64
	// Repulls counts pulls the server ended that the runner started again.
	Repulls               atomic.Int64
	InFlight, MaxInFlight atomic.Int64
}

// Runner pulls one consumer and runs one handler.
type Runner struct {
	js      jetstream.JetStream
	cons    jetstream.Consumer
	h       Handler
	cfg     Config
	window  int
	ackWait time.Duration
	maxDel  int
	stats   Stats
}

// New returns a runner for consumer cons of js. It reads the consumer's ack
// window, AckWait and delivery limit (topology.MaxDeliverOf) from its cached
// info; it starts nothing.
func New(js jetstream.JetStream, cons jetstream.Consumer, h Handler, cfg Config) (*Runner, error) {
	if cfg.Stage == "" {
		return nil, errors.New("runner: stage name is required")
	}
	if h == nil {
		return nil, fmt.Errorf("runner %s: no handler", cfg.Stage)
	}
	info := cons.CachedInfo()
	if info == nil {
		return nil, fmt.Errorf("runner %s: consumer has no info", cfg.Stage)
	}
	r := &Runner{js: js, cons: cons, h: h, cfg: cfg,
		window: info.Config.MaxAckPending, ackWait: info.Config.AckWait, maxDel: topology.MaxDeliverOf(info.Config)}
	if r.window <= 0 {
		return nil, fmt.Errorf("runner %s: consumer %s has no ack window (MaxAckPending)", cfg.Stage, info.Name)
	}
	if r.ackWait <= 0 {
		r.ackWait = 30 * time.Second
	}
	if r.cfg.Workers <= 0 || r.cfg.Workers > r.window {
		r.cfg.Workers = r.window
	}
	if r.cfg.BackoffBase <= 0 {
		r.cfg.BackoffBase = 500 * time.Millisecond
	}
	if r.cfg.BackoffMax <= 0 {
		r.cfg.BackoffMax = time.Minute
	}
	if r.cfg.Grace <= 0 {
		r.cfg.Grace = 10 * time.Second
	}
	if r.cfg.Logger == nil {
		r.cfg.Logger = slog.Default()
	}
	r.cfg.Logger = r.cfg.Logger.With("stage", cfg.Stage)
	return r, nil
}

// Stats returns the runner's live counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// Window returns the consumer's ack window.
func (r *Runner) Window() int { return r.window }

// Run pulls and handles messages until ctx ends. Then it stops pulling, hands
// buffered messages back at once, lets in-flight handlers finish within the
// grace period (cancelling them after it, and handing their messages back),
// and returns nil. It returns an error when pulling cannot start, or stops
// because the connection was closed. A pull the server ends (the consumer
// deleted and created again, say) is started again after a second.
func (r *Runner) Run(ctx context.Context) error {
	// The client buffers at most one pull's worth: messages waiting in the
	// buffer age against AckWait before a worker sees them.
	pull := max(1, min(r.cfg.Workers, r.window))
	open := func() (jetstream.MessagesContext, error) {
		// A pull request that goes unanswered — the cluster lost it (its
		// server died before a new consumer leader could answer it with 409
		// Leadership Change), or, now and then on a busy machine, for no
		// reason we could find (nats.go issues 1621, 1622) — is noticed by
		// missing heartbeats: pull requests of 5s with 1s heartbeats bound
		// that stall to about 2s (nats.go's default is 30s).
		var size jetstream.PullMessagesOpt = jetstream.PullMaxMessages(pull)
		if r.cfg.PullMaxBytes > 0 {
			size = jetstream.PullMaxMessagesWithBytesLimit(pull, r.cfg.PullMaxBytes)
		}
		return r.cons.Messages(size, jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat),
			jetstream.WithMessagesErrOnMissingHeartbeat(false))
	}
	it, err := open()
	if err != nil {
		return fmt.Errorf("%s: pull: %w", r.cfg.Stage, err)
	}
	var itMu sync.Mutex // guards it against the watcher's Drain

	// Handlers run on hctx, which outlives ctx by the grace period; it
	// carries ctx's end for WhileFull, which hands back rather than waits.
	hctx, hcancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), stoppingKey{}, ctx.Done()))
	defer hcancel()
	workersDone := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		select {
		case <-ctx.Done():
		case <-workersDone:
			return
		}
		itMu.Lock()
		it.Drain()
		itMu.Unlock()
		select {
		case <-time.After(r.cfg.Grace):
			hcancel()
		case <-workersDone:
		}
	})

	work := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	// Workers carry the stage as a profiler label, so a CPU profile splits
	// by stage: go tool pprof -tagfocus stage=transform …
	labels := pprof.Labels("stage", r.cfg.Stage)
	for range r.cfg.Workers {
		workers.Go(func() {
			pprof.Do(hctx, labels, func(context.Context) {
				for m := range work {
					r.handle(ctx, hctx, m)
				}
			})
		})
	}

	var runErr error
	for {
		itMu.Lock()
		cur := it
		itMu.Unlock()
		m, err := cur.Next()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				runErr = fmt.Errorf("%s: pull stopped: %w", r.cfg.Stage, err)
				break
			}
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				r.cfg.Logger.Debug("pull", "err", err)
				continue
			}
			// The server ended the pull while this member is to go on (the
			// consumer was deleted or recreated, a bad request): the iterator
			// is closed for good and the stage would sit idle. Pull again.
			r.cfg.Logger.Warn("pull ended by the server, pulling again", "err", err)
			r.stats.Repulls.Add(1)
			if !sleepCtx(ctx, repullDelay) {
				break
			}
			itMu.Lock()
			if ctx.Err() == nil {
				if next, err := open(); err == nil {
					it = next
				} else {
					r.cfg.Logger.Warn("pull again", "err", err)
				}
			}
			itMu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			// Drained after shutdown began: hand back at once.
			r.stats.HandedBack.Add(1)
			_ = m.Nak()
			continue
		}
		r.stats.Received.Add(1)
		work <- m
	}
	itMu.Lock()
	it.Stop()
	itMu.Unlock()
	close(work)
	workers.Wait()
	close(workersDone)
	watcher.Wait()
	return runErr
}

// Pull timing: see Run.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
	repullDelay   = time.Second
)

// sleepCtx waits d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *Runner) handle(runCtx, ctx context.Context, jm jetstream.Msg) {
	n := r.stats.InFlight.Add(1)
	defer r.stats.InFlight.Add(-1)
	for {
		old := r.stats.MaxInFlight.Load()
		if n <= old || r.stats.MaxInFlight.CompareAndSwap(old, n) {
			break
		}
	}

	m := &Msg{Subject: jm.Subject(), Data: jm.Data(), Header: jm.Headers(), Delivered: 1}
	m.Dataset = topology.DatasetOf(m.Subject)
	if md, err := jm.Metadata(); err == nil {
		m.Delivered, m.StreamSeq, m.Stored = md.NumDelivered, md.Sequence.Stream, md.Timestamp
	}

	start := time.Now()
	var err error
	if r.maxDel > 0 && m.Delivered > 2*uint64(r.maxDel) {
		// Far past its limit: deliveries ended without an ack or a nak, as
		// when the process handling the message crashes on it. Handling it
		// again would crash the next one.
		err = Permanent(fmt.Errorf("delivered %d times (limit %d), mostly without an outcome: a stage process may have crashed handling it", m.Delivered, r.maxDel))
	} else {
		err = r.work(runCtx, ctx, jm, m)
	}

	outcome := OutcomeRetried
	log := r.cfg.Logger
	switch {
	case err == nil:
		if aerr := jm.Ack(); aerr != nil {
			log.Warn("ack", "subject", m.Subject, "seq", m.StreamSeq, "err", aerr)
		}
		r.stats.Acked.Add(1)
		outcome = OutcomeAcked
	case errors.Is(err, ErrStopping) ||
		runCtx.Err() != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled) || topology.IsFull(err)):
		// Shutting down: the work is not done, hand it back for another
		// member. However many deliveries it has had, the server delivers it
		// again (topology.Window.MaxDeliver).
		r.stats.HandedBack.Add(1)
		if runCtx.Err() != nil {
			_ = jm.Nak()
		} else {
			// The stage stopped before its runner did: not at once, or
			// this runner would take it straight back.
			_ = jm.NakWithDelay(time.Second)
		}
		outcome = OutcomeHandedBack
	case IsPermanent(err) || (r.maxDel > 0 && m.Delivered >= uint64(r.maxDel)):
		if r.deadLetter(ctx, jm, m, err) {
			outcome = OutcomeDeadLettered
		}
	default:
		delay, ok := retryDelay(err)
		if !ok {
			delay = r.backoff(m.Delivered)
		}
		log.Warn("retry", "subject", m.Subject, "seq", m.StreamSeq, "attempt", m.Delivered,
			"delay", delay.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond), "err", err)
		r.stats.Retried.Add(1)
		_ = jm.NakWithDelay(delay)
	}
	if r.cfg.Observe != nil {
		r.cfg.Observe(m, outcome, time.Since(start))
	}
}

// work runs the handler on m, keeping the message with in-progress signals
// however long it takes, and holding it while a stream it publishes into
// is full.
func (r *Runner) work(runCtx, ctx context.Context, jm jetstream.Msg, m *Msg) error {
	var mu sync.Mutex
	done := false
	var keepAlive *time.Timer
	mu.Lock()
	keepAlive = time.AfterFunc(r.ackWait/3, func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		_ = jm.InProgress()
		keepAlive.Reset(r.ackWait / 3)
	})
	mu.Unlock()
	defer func() {
		mu.Lock()
		done = true
		keepAlive.Stop()
		mu.Unlock()
	}()
	// A stream this stage publishes into is full: hold the message (the
	// keep-alive above sends in-progress) and try again, without using up
	// an attempt, until the stream drains or the runner stops.
	return whileFull(runCtx, nil, holdWaitMax,
		func() error { return r.h.Handle(ctx, m) },
		func(err error) {
			if runCtx.Err() == nil { // stopping: it is handed back, not held
				r.cfg.Logger.Warn("downstream full, holding", "subject", m.Subject, "seq", m.StreamSeq, "err", err)
			}
		})
}

func (r *Runner) backoff(attempt uint64) time.Duration {
	d := r.cfg.BackoffBase << min(attempt-1, 20)
	if d <= 0 || d > r.cfg.BackoffMax {
		d = r.cfg.BackoffMax
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// deadLetterHeadroom is what a dead letter leaves of the server's maximum
// payload for its headers.
const deadLetterHeadroom = 4 << 10

// deadLetter publishes the message to the DLQ, then terminates it. If the
// dead letter cannot be published the message is retried instead, never
// lost (the server delivers it again whatever its deliveries, and the next
// delivery past the limit tries the dead letter again), and deadLetter
// returns false.
func (r *Runner) deadLetter(ctx context.Context, jm jetstream.Msg, m *Msg, cause error) bool {
	reason := cause.Error()
	if !IsPermanent(cause) {
		reason = fmt.Sprintf("gave up after %d attempts: %s", m.Delivered, reason)
	}
	dl := &wire.DeadLetter{
		Stage: r.cfg.Stage, Dataset: m.Dataset, Subject: m.Subject, StreamSeq: m.StreamSeq,
		Data: m.Data, Headers: m.Header, Error: reason, Attempts: m.Delivered, At: time.Now().UTC(),
	}
	if r.cfg.Annotate != nil {
		r.cfg.Annotate(m, dl)
	}
	data, err := wire.Encode(dl)
	if limit := r.js.Conn().MaxPayload() - deadLetterHeadroom; err == nil && int64(len(data)) > limit {
		// Too large to publish, ever: keep what tells where it came from
		// (source, URL, subject, sequence) and the reason, not the message.
		dl.DataOmitted, dl.Data = len(dl.Data), nil
		dl.Error += fmt.Sprintf(" (the %d-byte message was too large to keep in a dead letter)", dl.DataOmitted)
		data, err = wire.Encode(dl)
	}
	if err == nil {
		id := wire.DeadLetterMsgID(r.cfg.Stage, m.Subject, m.StreamSeq)
		_, err = r.js.Publish(ctx, topology.DLQSubject(r.cfg.Stage, m.Dataset), data, jetstream.WithMsgID(id))
	}
	if err != nil {
		r.cfg.Logger.Error("dead letter not published, will retry", "subject", m.Subject, "seq", m.StreamSeq, "err", err)
		r.stats.Retried.Add(1)
		_ = jm.NakWithDelay(r.backoff(m.Delivered))
		return false
	}
	r.cfg.Logger.Error("dead-lettered", "subject", m.Subject, "seq", m.StreamSeq,
		"attempts", m.Delivered, "source", dl.SourceID, "url", dl.URL, "reason", reason)
	r.stats.DeadLettered.Add(1)
	if err := jm.Term(); err != nil {
		r.cfg.Logger.Warn("term", "subject", m.Subject, "seq", m.StreamSeq, "err", err)
	}
	return true
}
