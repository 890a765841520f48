package upload

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/pcapout"
)

// dirStore is a second Store, one type: objects are files under root. An
// object goes in two halves, the first attempt at each stopping after the
// first (what is written so far is its Partial), so that every upload
// resumes.
type dirStore struct {
	root    string
	mu      sync.Mutex
	resumed int
}

// dirPartial is how many bytes of an object a failed Put wrote.
type dirPartial struct{ written int64 }

var _ Store = (*dirStore)(nil)

var errHalf = errors.New("the first attempt stops halfway")

func (s *dirStore) Put(_ context.Context, o Object, resume Partial) (Partial, error) {
	name := filepath.Join(s.root, filepath.FromSlash(o.Key))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	p, _ := resume.(*dirPartial)
	if p == nil {
		f, err := os.Create(name + ".part")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		half := o.Size / 2
		if _, err := io.Copy(f, io.NewSectionReader(o.File, 0, half)); err != nil {
			return nil, err
		}
		return &dirPartial{half}, errHalf
	}
	s.mu.Lock()
	s.resumed++
	s.mu.Unlock()
	f, err := os.OpenFile(name+".part", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.Copy(f, io.NewSectionReader(o.File, p.written, o.Size-p.written)); err != nil {
		return p, err
	}
	if err := f.Sync(); err != nil {
		return p, err
	}
	// Verified as S3 does: what the store holds is what was sent.
	if !sameContent(o.File, name+".part") {
		return nil, errIntegrity
	}
	return nil, os.Rename(name+".part", name)
}

func (s *dirStore) Abort(_ context.Context, key string) error {
	err := os.Remove(filepath.Join(s.root, filepath.FromSlash(key)) + ".part")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// TestSecondStore: an Uploader over a Store that is not S3 takes a rotating
// capture's files to it whole, each after a failed attempt that left half
// of it there.
func TestSecondStore(t *testing.T) {
	dir := t.TempDir()
	store := &dirStore{root: filepath.Join(dir, "store")}
	loc := archive.Location{Bucket: "unused"}
	u := openUploader(t, Config{
		Store: store, Target: loc, Spool: filepath.Join(dir, "spool"), Sink: "sink-a", Host: "host-a",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	files := capture(t, filepath.Join(dir), pcapout.FormatPcap, 5, 40, 300, u.Handle)
	s := waitUploaded(t, u, 5)
	u.Close(time.Second)
	stored := map[string][]byte{}
	err := filepath.WalkDir(store.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		stored[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sameContents(t, stored, files)
	var failed uint64
	for _, n := range s.Failures {
		failed += n
	}
	if store.resumed != 5 || failed != 5 {
		t.Fatalf("%d uploads resumed, %d failed attempts, want 5 each", store.resumed, failed)
	}
}
