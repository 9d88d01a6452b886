package runner

import (
	"errors"
	"time"
)

// ErrStopping is returned, wrapped, by a handler whose stage stopped under
// it before the message was done: the runner hands the message back for
// another member, and does not count the delivery as a failure.
var ErrStopping = errors.New("stage stopping")

// permanentError marks an error that no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one no retry can fix: the runner dead-letters the
// message at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryError carries the delay a handler asks for before the next attempt.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// RetryAfter marks err as transient with a delay the handler knows better
// than the runner's backoff (an HTTP Retry-After, say).
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryError{err: err, after: d}
}

// retryDelay returns the delay err asks for, if any.
func retryDelay(err error) (time.Duration, bool) {
	var r *retryError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}
