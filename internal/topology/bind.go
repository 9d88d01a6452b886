package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bind looks up what stage needs without creating anything, waiting until
// it exists: the NATS permissions of a stage user suffice (docs/security.md).
// waiting, if set, is called once with what is missing when it has to wait.
func Bind(ctx context.Context, js jetstream.JetStream, stage string, waiting func(missing error)) (*Topology, error) {
	waited := false
	for {
		t, err := lookup(ctx, js, stage)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) &&
			!errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
			return nil, err
		}
		if !waited && waiting != nil {
			waiting(err)
		}
		waited = true
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// lookup finds the consumer and buckets of one stage.
func lookup(ctx context.Context, js jetstream.JetStream, stage string) (*Topology, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := &Topology{JS: js}
	var err error
	switch stage {
	case ConsumerFetch:
		if t.Fetch, err = js.Consumer(ctx, StreamSources, stage); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", stage, err)
		}
		if t.Bodies, err = js.ObjectStore(ctx, BucketBodies); err != nil {
			return nil, fmt.Errorf("object store %s: %w", BucketBodies, err)
		}
		if t.Cache, err = js.KeyValue(ctx, BucketCache); err != nil {
			return nil, fmt.Errorf("key-value %s: %w", BucketCache, err)
		}
	case ConsumerTransform:
		if t.Transform, err = js.Consumer(ctx, StreamFetched, stage); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", stage, err)
		}
		if t.Bodies, err = js.ObjectStore(ctx, BucketBodies); err != nil {
			return nil, fmt.Errorf("object store %s: %w", BucketBodies, err)
		}
	case ConsumerCombine:
		if t.Combine, err = js.Consumer(ctx, StreamRecords, stage); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", stage, err)
		}
		if t.Manifest, err = js.KeyValue(ctx, BucketManifest); err != nil {
			return nil, fmt.Errorf("key-value %s: %w", BucketManifest, err)
		}
		if t.Chunks, err = js.ObjectStore(ctx, BucketChunks); err != nil {
			return nil, fmt.Errorf("object store %s: %w", BucketChunks, err)
		}
	default:
		return nil, fmt.Errorf("unknown stage %q", stage)
	}
	return t, nil
}
