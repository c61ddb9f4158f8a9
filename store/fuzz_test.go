package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"meterupd/manifest"
	"meterupd/store/storetest"
)

// memRemote serves a package from memory.
type memRemote []byte

func (m memRemote) Fetch(_ context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, context.DeadlineExceeded
	}
	n := copy(p, m[off:])
	return n, nil
}

// FuzzFetch feeds hostile packages to the whole fetch: the tar walk, the
// manifest checks, the block lists and blocks. Nothing may panic; what is
// accepted must be the payloads the signed manifest names.
func FuzzFetch(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "manifest", "testdata", "*.pkg"))
	if len(paths) == 0 {
		f.Fatal("no seed packages in ../manifest/testdata")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	keys, err := manifest.NewKeyring(storetest.Key(f, "test-ed25519").Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pkg []byte) {
		if len(pkg) > 1<<20 {
			return
		}
		res, err := Fetch(context.Background(), memRemote(pkg), Options{Dir: t.TempDir(), Size: int64(len(pkg)), Keys: keys})
		if err != nil {
			return
		}
		for _, it := range res.Manifest.Items {
			b, err := os.ReadFile(res.Payloads[it.Payload])
			if err != nil || uint64(len(b)) != it.Size || string(storetest.Sum(b)) != string(it.Digest) {
				t.Fatalf("accepted payload %s does not match its manifest entry", it.Payload)
			}
		}
	})
}

// FuzzLoadHeld: any record file reads as some set of held blocks.
func FuzzLoadHeld(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0x6b, 0x2b, 0x3e, 0x48})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "h")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		held, err := loadHeld(path, 64)
		if err != nil || len(held) != 64 {
			t.Fatalf("loadHeld = %d, %v", len(held), err)
		}
	})
}
