// Package objects writes objects into a JetStream object store the way
// ObjectStore.Put does — chunks on a fresh subject, then the object's info
// on its name's subject — for writers that already know the object's
// SHA-256: Put hashes every object again and sets up a JetStream context (a
// reply subscription) of its own for each call, which costs more than the
// write for the many small objects trainfeed stores.
package objects

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ChunkSize is the size of the chunks PutNew cuts: ObjectStore.Put's default.
const ChunkSize = 128 << 10

// Store is an object store bucket written through its stream.
type Store struct {
	js     jetstream.JetStream
	bucket string
	stream jetstream.Stream
}

// Open returns the Store of bucket, which must exist.
func Open(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	s, err := js.Stream(ctx, StreamName(bucket))
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", bucket, err)
	}
	return &Store{js: js, bucket: bucket, stream: s}, nil
}

// Lazy opens the Store of an object store on first use; it is safe for
// concurrent use. Its zero value is not usable: see NewLazy.
type Lazy struct {
	js  jetstream.JetStream
	obs jetstream.ObjectStore
	mu  sync.Mutex
	st  *Store
}

// NewLazy returns a Lazy for obs; it asks the server nothing yet.
func NewLazy(js jetstream.JetStream, obs jetstream.ObjectStore) *Lazy {
	return &Lazy{js: js, obs: obs}
}

// Store returns the Store, opening it the first time.
func (l *Lazy) Store(ctx context.Context) (*Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		status, err := l.obs.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("object store status: %w", err)
		}
		if l.st, err = Open(ctx, l.js, status.Bucket()); err != nil {
			return nil, err
		}
	}
	return l.st, nil
}

// Put stores size bytes read from r, whose SHA-256 is hexSum, as
// meta.Name. A name not in the store (exists false) is written with
// PutNew; one that is — an old copy to renew, a write tried again — with
// ObjectStore.Put, which replaces its chunks, and what Put hashed is checked
// against hexSum (the object is removed when they differ).
func (l *Lazy) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader, size int64, hexSum string, exists bool) error {
	if !exists {
		st, err := l.Store(ctx)
		if err != nil {
			return err
		}
		return st.PutNew(ctx, meta, r, size, hexSum) // checks hexSum itself
	}
	want, err := Digest(hexSum)
	if err != nil {
		return err
	}
	put, err := l.obs.Put(ctx, meta, r)
	if err != nil {
		return fmt.Errorf("store %s: %w", meta.Name, err)
	}
	if put.Size != uint64(size) || put.Digest != want {
		_ = l.obs.Delete(ctx, meta.Name)
		return fmt.Errorf("store %s: stored %d bytes with digest %s, want %d bytes with %s",
			meta.Name, put.Size, put.Digest, size, want)
	}
	return nil
}

// Digest is the object store's form of a hex SHA-256 digest:
// "SHA-256=<base64url>".
func Digest(hexSum string) (string, error) {
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != 32 {
		return "", fmt.Errorf("not a hex sha-256: %q", hexSum)
	}
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum), nil
}

// PutNew stores size bytes read from r, whose SHA-256 is hexSum, as the
// object meta.Name, which must not be in the store: an object it replaced
// would keep its chunks. Readers get exactly what ObjectStore.Put would
// have stored, and check the digest when they read. Nothing is left behind
// when it fails.
func (s *Store) PutNew(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader, size int64, hexSum string) error {
	digest, err := Digest(hexSum)
	if err != nil {
		return err
	}
	id := nuid.Next()
	chunkSubject := ChunkSubject(s.bucket, id)
	var acks []jetstream.PubAckFuture
	answered := 0 // acks[:answered] are received: their channels are spent
	fail := func(err error) error {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// Chunks still on their way would land after the purge: wait for
		// every publish to be answered first.
		for _, ack := range acks[answered:] {
			select {
			case <-ack.Ok():
			case <-ack.Err():
			case <-pctx.Done():
			}
		}
		_ = s.stream.Purge(pctx, jetstream.WithPurgeSubject(chunkSubject))
		return fmt.Errorf("store %s: %w", meta.Name, err)
	}
	var n int64
	for {
		chunk := make([]byte, min(ChunkSize, max(size-n, 1)))
		k, rerr := io.ReadFull(r, chunk)
		if k > 0 {
			ack, err := s.js.PublishMsgAsync(&nats.Msg{Subject: chunkSubject, Data: chunk[:k]})
			if err != nil {
				return fail(err)
			}
			acks = append(acks, ack)
			n += int64(k)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if n != size {
		return fail(fmt.Errorf("read %d bytes of %d", n, size))
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			answered++
			return fail(err)
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		answered++
	}
	meta.Opts = &jetstream.ObjectMetaOptions{ChunkSize: ChunkSize}
	info := jetstream.ObjectInfo{ObjectMeta: meta, Bucket: s.bucket, NUID: id, Size: uint64(n), Chunks: uint32(len(acks)), Digest: digest}
	data, err := json.Marshal(&info)
	if err != nil {
		return fail(err)
	}
	m := &nats.Msg{Subject: MetaSubject(s.bucket, meta.Name), Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fail(err)
	}
	return nil
}
