package delta

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// seeds adds (old, patch) pairs from testdata: each *.old file with every
// patch made from it (*.bsdiff40 by Debian's bsdiff, *.node, *.bsdiff43,
// *.ours40 by this package).
func seeds(f *testing.F) {
	olds, _ := filepath.Glob("testdata/*.old")
	if len(olds) == 0 {
		f.Fatal("no testdata/*.old seed")
	}
	for _, o := range olds {
		old, err := os.ReadFile(o)
		if err != nil {
			f.Fatal(err)
		}
		base := o[:len(o)-len(".old")]
		ps, _ := filepath.Glob(base + ".*")
		for _, p := range ps {
			if filepath.Ext(p) == ".old" || filepath.Ext(p) == ".new" {
				continue
			}
			patch, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(old, patch)
		}
	}
}

// FuzzPatch applies arbitrary patches in every format: no panic, no output
// past the cap, and a typed error for what is refused.
func FuzzPatch(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		const maxOut = 1 << 20
		w := &flash{bs: 4096}
		_, err := Apply(context.Background(), bytes.NewReader(old), int64(len(old)), readers([][]byte{patch}), w, Options{BlockSize: 4096, MaxSize: maxOut, MaxPatchBuffer: 1 << 20})
		if len(w.data) > maxOut {
			t.Fatalf("wrote %d bytes past the %d-byte cap", len(w.data), maxOut)
		}
		if err == nil {
			return
		}
		var ce *CorruptError
		if !errors.As(err, &ce) && !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrTooLarge) &&
			!errors.Is(err, ErrSourceMismatch) && !errors.Is(err, ErrTargetMismatch) {
			t.Fatalf("Apply error %v is not one of the typed errors", err)
		}
	})
}

// FuzzChain applies a fuzzed second hop after a valid first one, so the
// decoder of an inner hop view and the stream decoder both see the bytes.
func FuzzChain(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		if len(old) > 16<<10 {
			return // the first hop's diff would dominate the run time
		}
		first, err := DiffWith(old, old, DiffOptions{FrameSize: 16 << 10, DigestBlock: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		w := &flash{bs: 4096}
		Apply(context.Background(), bytes.NewReader(old), int64(len(old)), readers([][]byte{first, patch}), w, Options{BlockSize: 4096, MaxSize: 1 << 20, MaxPatchBuffer: 1 << 20})
		Apply(context.Background(), bytes.NewReader(old), int64(len(old)), readers([][]byte{patch, first}), w, Options{BlockSize: 4096, MaxSize: 1 << 20, MaxPatchBuffer: 1 << 20})
	})
}

// FuzzDiffRoundTrip checks Patch(old, Diff(old, new)) == new in every format.
func FuzzDiffRoundTrip(f *testing.F) {
	news, _ := filepath.Glob("testdata/*.new")
	for _, n := range news {
		nw, _ := os.ReadFile(n)
		old, _ := os.ReadFile(n[:len(n)-len(".new")] + ".old")
		f.Add(old, nw)
	}
	f.Fuzz(func(t *testing.T, old, nw []byte) {
		if len(old) > 1<<16 || len(nw) > 1<<16 {
			return
		}
		for _, format := range []Format{FormatNode, FormatNode1, FormatBSDIFF40, FormatBSDIFF43} {
			p, err := DiffWith(old, nw, DiffOptions{Format: format, FrameSize: 4 << 10, DigestBlock: 4 << 10})
			if err != nil {
				t.Fatalf("%v: Diff: %v", format, err)
			}
			got, err := Patch(old, bytes.NewReader(p))
			if err != nil || !bytes.Equal(got, nw) {
				t.Fatalf("%v: Patch(Diff(old, new)) = %d bytes, %v; want new (%d bytes)", format, len(got), err, len(nw))
			}
		}
	})
}

// FuzzCheckpoint decodes arbitrary checkpoints: no panic, and what decodes
// encodes back to the same bytes.
func FuzzCheckpoint(f *testing.F) {
	c := Checkpoint{BlockSize: 65536, Next: 3, Restart: 1 << 19, HashState: make([]byte, 108)}
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Checkpoint
		if err := c.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("UnmarshalBinary error %v does not wrap ErrCheckpoint", err)
			}
			return
		}
		got, _ := c.MarshalBinary()
		if !bytes.Equal(got, b) {
			t.Fatalf("MarshalBinary(UnmarshalBinary(b)) differs from b")
		}
	})
}
