package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// DownloadChunk copies a committed chunk from the chunks object store to
// path (through a temp file in its folder, fsynced, then renamed), checking
// its sha256 against the manifest entry.
func DownloadChunk(ctx context.Context, store jetstream.ObjectStore, ch *wire.Chunk, path string) error {
	obj, err := store.Get(ctx, ch.Object)
	if err != nil {
		return fmt.Errorf("chunk %d from %s: %w", ch.Seq, ch.Object, err)
	}
	defer obj.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("chunk %d: %w", ch.Seq, err)
	}
	f, err := CreateTemp(filepath.Dir(path), ".tmp-download-*")
	if err != nil {
		return fmt.Errorf("chunk %d: %w", ch.Seq, err)
	}
	defer os.Remove(f.Name()) // no-op once renamed
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), obj)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("chunk %d: %w", ch.Seq, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ch.SHA256 {
		return fmt.Errorf("chunk %d: sha256 %s, manifest says %s", ch.Seq, got, ch.SHA256)
	}
	return os.Rename(f.Name(), path)
}
