package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// body is a downloaded body, spooled and hashed.
type body struct {
	spool       *spool
	sha256      string
	size        int64
	contentType string
}

func (b *body) name() string { return objectPrefix + b.sha256 }

func (b *body) got() *got {
	return &got{object: b.name(), sha256: b.sha256, size: b.size, contentType: b.contentType}
}

// readBufs recycles the buffers bodies are read through.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// spoolBody reads r into a spool while hashing it, refusing more than
// MaxBodyBytes. The caller closes the body's spool.
func (h *Handler) spoolBody(r io.Reader) (*body, error) {
	sp := newSpool(h.cfg.SpoolDir, h.cfg.SpoolMemory, h.budget)
	hash := sha256.New()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var size int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > h.cfg.MaxBodyBytes {
				sp.Close()
				return nil, runner.Permanent(fmt.Errorf("body larger than %d bytes", h.cfg.MaxBodyBytes))
			}
			hash.Write(buf[:n])
			if _, err := sp.Write(buf[:n]); err != nil {
				sp.Close()
				return nil, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			sp.Close()
			return nil, fmt.Errorf("read body after %d bytes: %w", size, readError(rerr))
		}
	}
	return &body{spool: sp, sha256: hex.EncodeToString(hash.Sum(nil)), size: size}, nil
}

// bodiesTTL returns the bodies store's TTL (0: bodies never expire), asking
// the server once.
func (h *Handler) bodiesTTL(ctx context.Context) (time.Duration, error) {
	h.ttlMu.Lock()
	defer h.ttlMu.Unlock()
	if h.ttlOK {
		return h.ttl, nil
	}
	st, err := h.bodies.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("bodies store status: %w", err)
	}
	h.ttl, h.ttlOK = st.TTL(), true
	return h.ttl, nil
}

// stored returns the info of the stored object name when it exists and has
// at least half the store's TTL to live, so that whatever is published now
// is read long before it expires; nil otherwise.
func (h *Handler) stored(ctx context.Context, name string) (*jetstream.ObjectInfo, error) {
	info, err := h.bodies.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	ttl, err := h.bodiesTTL(ctx)
	if err != nil {
		return nil, err
	}
	if ttl > 0 && time.Since(info.ModTime) >= ttl/2 {
		return nil, nil
	}
	return info, nil
}

// store uploads b unless an object of its name, which holds the same bytes
// since names are digests, is stored with at least half the store's TTL to
// live; an older one is uploaded again, which renews it.
func (h *Handler) store(ctx context.Context, b *body) error {
	name := b.name()
	info, err := h.stored(ctx, name)
	if err != nil || info != nil {
		return err
	}
	meta := jetstream.ObjectMeta{Name: name}
	if b.contentType != "" {
		meta.Headers = map[string][]string{"Content-Type": {b.contentType}}
	}
	r, err := b.spool.Reader()
	if err != nil {
		return err
	}
	put, err := h.bodies.Put(ctx, meta, r)
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	// The object store hashes what it read; a difference means the spool
	// did not give back what it was given.
	sum, _ := hex.DecodeString(b.sha256)
	want := "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
	if put.Size != uint64(b.size) || put.Digest != want {
		_ = h.bodies.Delete(ctx, name)
		return fmt.Errorf("store %s: stored %d bytes with digest %s, want %d bytes with %s",
			name, put.Size, put.Digest, b.size, want)
	}
	return nil
}
