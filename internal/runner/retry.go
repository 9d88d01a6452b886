package runner

import (
	"context"
	"time"
)

// Backoff is a retry policy: the first wait is Min, each next one twice
// the last, up to Max; at most Tries tries (0: until ctx ends).
type Backoff struct {
	Min, Max time.Duration
	Tries    int
}

// Retry calls try until it succeeds, fails with an error retryable
// rejects (nil: every error is retried), or b's tries run out, waiting per
// b between tries, and returns try's last error. When ctx ends during a
// wait it returns the last error at once. It is the one retry loop of
// work outside a message's handling (the runner's own backoff redelivers
// the message): publishing a chunk event, a source of a run.
func Retry(ctx context.Context, b Backoff, retryable func(error) bool, try func() error) error {
	return retry(ctx, nil, b, retryable, try, nil)
}

// retry is Retry that also stops when stop closes, and calls first, if
// not nil, with the first error it will retry.
func retry(ctx context.Context, stop <-chan struct{}, b Backoff, retryable func(error) bool, try func() error, first func(error)) error {
	wait := b.Min
	for n := 1; ; n++ {
		err := try()
		if err == nil || (retryable != nil && !retryable(err)) || (b.Tries > 0 && n >= b.Tries) {
			return err
		}
		if n == 1 && first != nil {
			first(err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-stop:
			t.Stop()
			return err
		}
		wait = min(2*wait, b.Max)
	}
}
