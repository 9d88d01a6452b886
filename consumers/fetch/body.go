package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// body is a stored body: its digest, size and content type.
type body struct {
	sha256      string
	size        int64
	contentType string
}

func (b *body) name() string { return objectPrefix + b.sha256 }

func (b *body) got() *got {
	return &got{object: b.name(), sha256: b.sha256, size: b.size, contentType: b.contentType}
}

// uploadPrefix names the bodies that stream into the store before their
// digest is known; each is renamed to its digest once it is whole.
const uploadPrefix = "upload/"

// errBodyTooLarge reports a body of more than MaxBodyBytes.
var errBodyTooLarge = errors.New("body too large")

// readBufs recycles the buffers bodies are read through.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// fetchBody reads a body and stores it in the bodies store under its
// digest, refusing more than MaxBodyBytes; downloaded is called once the
// last byte is read. A body of up to SpoolMemory bytes is read whole into a
// spool (memory, or a file in SpoolDir when the shared budget is spent),
// hashed, and uploaded unless the same bytes are stored already. A larger
// body streams into the store while it downloads, under a temporary name,
// and is renamed to its digest once whole: download and upload overlap,
// and it touches no disk but the store's.
func (h *Handler) fetchBody(ctx context.Context, r io.Reader, contentType string, downloaded func()) (*body, error) {
	sp := newSpool(h.cfg.SpoolDir, h.cfg.SpoolMemory, h.budget)
	defer sp.Close()
	hash := sha256.New()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var size int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 && size+int64(n) > h.cfg.SpoolMemory {
			rest := io.MultiReader(bytes.NewReader(buf[:n]), r)
			if rerr != nil && rerr != io.EOF {
				rest = io.MultiReader(bytes.NewReader(buf[:n]), errReader{rerr})
			}
			b, err := h.streamBody(ctx, sp, size, rest, contentType)
			downloaded()
			return b, err
		}
		if n > 0 {
			size += int64(n)
			if size > h.cfg.MaxBodyBytes {
				return nil, runner.Permanent(fmt.Errorf("body larger than %d bytes", h.cfg.MaxBodyBytes))
			}
			hash.Write(buf[:n])
			if _, err := sp.Write(buf[:n]); err != nil {
				return nil, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("read body after %d bytes: %w", size, readError(rerr))
		}
	}
	downloaded()
	b := &body{sha256: hex.EncodeToString(hash.Sum(nil)), size: size, contentType: contentType}
	if err := h.store(ctx, b, sp); err != nil {
		return nil, err
	}
	return b, nil
}

// streamBody uploads the spooled head of a body and the rest of it as it
// is read, under a temporary name; the store's digest of what it read
// names the body. The upload is removed when anything fails.
func (h *Handler) streamBody(ctx context.Context, head *spool, headSize int64, rest io.Reader, contentType string) (*body, error) {
	hr, err := head.Reader()
	if err != nil {
		return nil, err
	}
	cr := &capReader{r: rest, n: headSize, max: h.cfg.MaxBodyBytes}
	tmp := uploadPrefix + nuid.Next()
	info, err := h.bodies.Put(ctx, jetstream.ObjectMeta{Name: tmp}, fillReader{io.MultiReader(hr, cr)})
	switch {
	case errors.Is(cr.err, errBodyTooLarge):
		return nil, runner.Permanent(fmt.Errorf("body larger than %d bytes", h.cfg.MaxBodyBytes))
	case cr.err != nil && cr.err != io.EOF:
		return nil, fmt.Errorf("read body after %d bytes: %w", cr.n, readError(cr.err))
	case err != nil:
		return nil, fmt.Errorf("store body: %w", err)
	}
	sum, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil || info.Size != uint64(cr.n) {
		_ = h.bodies.Delete(ctx, tmp)
		return nil, fmt.Errorf("store body: stored %d bytes with digest %q after reading %d", info.Size, info.Digest, cr.n)
	}
	b := &body{sha256: hex.EncodeToString(sum), size: cr.n, contentType: contentType}
	if err := h.rename(ctx, tmp, b); err != nil {
		_ = h.bodies.Delete(ctx, tmp)
		return nil, err
	}
	return b, nil
}

// rename gives the streamed upload tmp its digest's name, unless the same
// bytes are stored under it already (then the upload is removed). A copy
// past half the store's TTL is replaced.
func (h *Handler) rename(ctx context.Context, tmp string, b *body) error {
	name := b.name()
	meta := jetstream.ObjectMeta{Name: name}
	if b.contentType != "" {
		meta.Headers = map[string][]string{"Content-Type": {b.contentType}}
	}
	for attempt := 0; ; attempt++ {
		info, _, err := h.stored(ctx, name)
		if err != nil {
			return err
		}
		if info != nil {
			return h.bodies.Delete(ctx, tmp)
		}
		err = h.bodies.UpdateMeta(ctx, tmp, meta)
		if err == nil || !errors.Is(err, jetstream.ErrObjectAlreadyExists) || attempt > 0 {
			if err != nil {
				return fmt.Errorf("store %s: %w", name, err)
			}
			return nil
		}
		// An old copy is in the way: replace it.
		if err := h.bodies.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("store %s: replace old copy: %w", name, err)
		}
	}
}

// capReader counts what it reads and fails past max bytes; it keeps the
// error it returned.
type capReader struct {
	r      io.Reader
	n, max int64
	err    error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		n, err = 0, errBodyTooLarge
	}
	c.err = err
	return n, err
}

// fillReader fills every read whole unless the input ends or fails, so the
// store cuts a streamed body into full chunks.
type fillReader struct{ r io.Reader }

func (f fillReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := f.r.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

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
// is read long before it expires; nil otherwise. exists reports whether it
// exists at all.
func (h *Handler) stored(ctx context.Context, name string) (info *jetstream.ObjectInfo, exists bool, err error) {
	info, err = h.bodies.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("look up %s: %w", name, err)
	}
	ttl, err := h.bodiesTTL(ctx)
	if err != nil {
		return nil, true, err
	}
	if ttl > 0 && time.Since(info.ModTime) >= ttl/2 {
		return nil, true, nil
	}
	return info, true, nil
}

// store uploads b, held in sp, unless an object of its name, which holds
// the same bytes since names are digests, is stored with at least half the
// store's TTL to live; an older one is uploaded again, which renews it.
func (h *Handler) store(ctx context.Context, b *body, sp *spool) error {
	name := b.name()
	info, exists, err := h.stored(ctx, name)
	if err != nil || info != nil {
		return err
	}
	meta := jetstream.ObjectMeta{Name: name}
	if b.contentType != "" {
		meta.Headers = map[string][]string{"Content-Type": {b.contentType}}
	}
	r, err := sp.Reader()
	if err != nil {
		return err
	}
	// An old copy's chunks are replaced.
	return h.objects.Put(ctx, meta, r, b.size, b.sha256, exists)
}
