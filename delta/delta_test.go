package delta

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"meterupd/internal/realtool"
)

// image returns a synthetic executable-like image: ARM BL words between
// random "instructions", with runs of zeros and repeated strings.
func image(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+64)
	for len(b) < n {
		switch r.IntN(8) {
		case 0:
			b = append(b, make([]byte, r.IntN(300))...)
		case 1:
			b = append(b, "runtime.gopanic: index out of range"...)
		default:
			for i := 0; i < 16; i++ {
				w := r.Uint32()
				if r.IntN(4) == 0 {
					w = 0xEB000000 | uint32(r.IntN(1<<16))
				}
				b = binary.LittleEndian.AppendUint32(b, w)
			}
		}
	}
	return b[:n]
}

// mutate returns a new version of b: bytes changed, ranges inserted and
// deleted, and a shift as when code moves.
func mutate(b []byte, seed uint64, edits int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	out := append([]byte(nil), b...)
	for i := 0; i < edits && len(out) > 16; i++ {
		p := r.IntN(len(out) - 8)
		switch r.IntN(3) {
		case 0:
			out[p] ^= byte(1 + r.IntN(255))
		case 1:
			ins := make([]byte, 1+r.IntN(200))
			for j := range ins {
				ins[j] = byte(r.Uint32())
			}
			out = append(out[:p], append(ins, out[p:]...)...)
		case 2:
			k := min(1+r.IntN(200), len(out)-p)
			out = append(out[:p], out[p+k:]...)
		}
	}
	return out
}

type pair struct {
	name     string
	old, new []byte
}

func pairs() []pair {
	base := image(1, 200_000)
	return []pair{
		{"empty-both", nil, nil},
		{"empty-old", nil, image(2, 5000)},
		{"empty-new", image(3, 5000), nil},
		{"identical", base, base},
		{"small-edits", base, mutate(base, 4, 20)},
		{"many-edits", base, mutate(base, 5, 2000)},
		{"unrelated", image(6, 70_000), image(7, 90_001)},
		{"tiny", []byte("a"), []byte("ab")},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []Format{FormatNode, FormatNode1, FormatBSDIFF40, FormatBSDIFF43} {
		for _, p := range pairs() {
			t.Run(f.String()+"/"+p.name, func(t *testing.T) {
				patch, err := Diff(p.old, p.new, f)
				if err != nil {
					t.Fatalf("Diff: %v", err)
				}
				got, err := Patch(p.old, bytes.NewReader(patch))
				if err != nil {
					t.Fatalf("Patch: %v", err)
				}
				if !bytes.Equal(got, p.new) {
					t.Fatalf("Patch(Diff(old, new)) = %d bytes, want the %d bytes of new", len(got), len(p.new))
				}
			})
		}
	}
}

func TestNodeSmallFrames(t *testing.T) {
	old := image(10, 100_000)
	new := mutate(old, 11, 300)
	for _, tr := range []Transform{TransformNone, TransformARM} {
		patch, err := DiffWith(old, new, DiffOptions{Transform: tr, FrameSize: 8192, DigestBlock: 4096})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Patch(old, bytes.NewReader(patch))
		if err != nil || !bytes.Equal(got, new) {
			t.Fatalf("transform %d: Patch = %d bytes, %v; want %d bytes", tr, len(got), err, len(new))
		}
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRealBsdiffPatchAppliedByUs(t *testing.T) {
	bsdiff := realtool.Need(t, "bsdiff", "bsdiff")
	for _, p := range pairs()[3:] {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			oldF, newF, patchF := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")
			os.WriteFile(oldF, p.old, 0o644)
			os.WriteFile(newF, p.new, 0o644)
			if out, err := exec.Command(bsdiff, oldF, newF, patchF).CombinedOutput(); err != nil {
				t.Fatalf("bsdiff: %v: %s", err, out)
			}
			patch, err := os.ReadFile(patchF)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Patch(p.old, bytes.NewReader(patch))
			if err != nil {
				t.Fatalf("Patch(bsdiff's patch): %v", err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("Patch(bsdiff's patch) = %d bytes, not new (%d bytes)", len(got), len(p.new))
			}
		})
	}
}

func TestRealBspatchAppliesOurBSDIFF40(t *testing.T) {
	bspatch := realtool.Need(t, "bspatch", "bsdiff")
	for _, p := range pairs()[3:] {
		t.Run(p.name, func(t *testing.T) {
			patch, err := Diff(p.old, p.new, FormatBSDIFF40)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			oldF, newF, patchF := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")
			os.WriteFile(oldF, p.old, 0o644)
			os.WriteFile(patchF, patch, 0o644)
			if out, err := exec.Command(bspatch, oldF, newF, patchF).CombinedOutput(); err != nil {
				t.Fatalf("bspatch: %v: %s", err, out)
			}
			got, err := os.ReadFile(newF)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("bspatch(our patch) = %d bytes, not new (%d bytes)", len(got), len(p.new))
			}
		})
	}
}
