package runner

import (
	"context"
	"time"

	"github.com/trainfeed/trainfeed/internal/topology"
)

// stoppingKey is the context key of the channel that closes when the runner
// running a handler starts to stop.
type stoppingKey struct{}

// Waits between tries of a message's work while a stream is full: the first
// after fullWaitMin, doubling up to fullWaitMax within a handler (WhileFull)
// and up to holdWaitMax for the runner's hold of the whole handler.
const (
	fullWaitMin = 250 * time.Millisecond
	fullWaitMax = 2 * time.Second
	holdWaitMax = 5 * time.Second
)

// WhileFull calls try until it succeeds or fails with anything but a full
// stream (topology.IsFull), waiting between tries. A handler publishing into
// a full stream uses it to keep what it has done so far — a downloaded body,
// a parsed batch — until the stream has room, instead of failing and doing
// it all again. full, if not nil, is called once, at the first full stream.
// When ctx ends during a wait, or the runner handling the message starts
// to stop, WhileFull returns the full stream's error: the runner then holds
// the message, or hands it back at once when it is stopping.
func WhileFull(ctx context.Context, try func() error, full func(err error)) error {
	stopping, _ := ctx.Value(stoppingKey{}).(<-chan struct{}) // nil: never
	return whileFull(ctx, stopping, fullWaitMax, try, full)
}

// whileFull is WhileFull, stopping when ctx ends or stopping closes, with
// waits doubling up to maxWait.
func whileFull(ctx context.Context, stopping <-chan struct{}, maxWait time.Duration, try func() error, full func(err error)) error {
	return retry(ctx, stopping, Backoff{Min: fullWaitMin, Max: maxWait}, topology.IsFull, try, full)
}
