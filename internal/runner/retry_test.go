package runner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/runner"
)

func TestRetry(t *testing.T) {
	flaky, fatal := errors.New("flaky"), errors.New("fatal")
	b := runner.Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond, Tries: 4}
	tests := []struct {
		name      string
		results   []error // what each try returns; the last one repeats
		cancel    bool
		wantTries int
		wantErr   error
	}{
		{name: "done at once", results: []error{nil}, wantTries: 1},
		{name: "flaky, then done", results: []error{flaky, flaky, nil}, wantTries: 3},
		{name: "out of tries", results: []error{flaky}, wantTries: 4, wantErr: flaky},
		{name: "not retryable", results: []error{flaky, fatal}, wantTries: 2, wantErr: fatal},
		{name: "ctx ends during a wait", results: []error{flaky}, cancel: true, wantTries: 1, wantErr: flaky},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			tries := 0
			err := runner.Retry(ctx, b, func(err error) bool { return !errors.Is(err, fatal) }, func() error {
				err := tt.results[min(tries, len(tt.results)-1)]
				tries++
				return err
			})
			require.ErrorIs(t, err, tt.wantErr)
			if tt.wantErr == nil {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantTries, tries)
		})
	}
}
