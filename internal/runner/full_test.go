package runner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
)

func TestWhileFull(t *testing.T) {
	full := &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}
	other := errors.New("no route")
	tests := []struct {
		name      string
		results   []error // what each try returns; the last one repeats
		cancel    bool    // ctx is cancelled before the first wait
		wantTries int
		wantFull  int // calls of full
		wantErr   error
	}{
		{name: "done at once", results: []error{nil}, wantTries: 1},
		{name: "another error at once", results: []error{other}, wantTries: 1, wantErr: other},
		{name: "full, then room", results: []error{full, full, nil}, wantTries: 3, wantFull: 1},
		{name: "full, then another error", results: []error{full, other}, wantTries: 2, wantFull: 1, wantErr: other},
		{name: "full until ctx ends", results: []error{full}, cancel: true, wantTries: 1, wantFull: 1, wantErr: full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tt.cancel {
				cancel()
			}
			tries, fulls := 0, 0
			err := runner.WhileFull(ctx, func() error {
				tries++
				return tt.results[min(tries, len(tt.results))-1]
			}, func(err error) {
				require.True(t, topology.IsFull(err))
				fulls++
			})
			require.ErrorIs(t, err, tt.wantErr)
			if tt.wantErr == nil {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantTries, tries)
			require.Equal(t, tt.wantFull, fulls)
		})
	}
}
