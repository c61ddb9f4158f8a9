package delta

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata (needs Debian's bsdiff)")

// TestTestdata regenerates the fuzz seeds with -update, and otherwise
// checks that every committed patch still applies to its old image.
func TestTestdata(t *testing.T) {
	cases := map[string][2][]byte{
		"small":  {image(100, 3000), mutate(image(100, 3000), 101, 10)},
		"arm":    {append(armELFHeader(), image(102, 6000)...), append(armELFHeader(), mutate(image(102, 6000), 103, 30)...)},
		"tiny":   {[]byte("x"), []byte("hello")},
		"shrink": {image(104, 2000), image(104, 700)},
		"thumb":  {thumbImage(105, 6000), mutate(thumbImage(105, 6000), 106, 30)},
		"moved":  func() [2][]byte { o, n := movedCode(107, 16_000); return [2][]byte{o, n} }(),
		"refs":   func() [2][]byte { v := synthImages(108, 2, 60); return [2][]byte{v[0], v[1]} }(),
	}
	if *update {
		bsdiff := realtoolPath(t)
		for name, c := range cases {
			base := filepath.Join("testdata", name)
			os.WriteFile(base+".old", c[0], 0o644)
			os.WriteFile(base+".new", c[1], 0o644)
			for ext, f := range map[string]Format{".node": FormatNode, ".node1": FormatNode1, ".bsdiff43": FormatBSDIFF43, ".ours40": FormatBSDIFF40} {
				p, err := DiffWith(c[0], c[1], DiffOptions{Format: f, FrameSize: 4 << 10, DigestBlock: 4 << 10})
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(base+ext, p, 0o644)
			}
			if out, err := exec.Command(bsdiff, base+".old", base+".new", base+".bsdiff40").CombinedOutput(); err != nil {
				t.Fatalf("bsdiff: %v: %s", err, out)
			}
		}
	}
	for name := range cases {
		base := filepath.Join("testdata", name)
		old, err := os.ReadFile(base + ".old")
		if err != nil {
			t.Fatalf("%v (run go test -run TestTestdata -update)", err)
		}
		want, _ := os.ReadFile(base + ".new")
		for _, ext := range []string{".node", ".node1", ".bsdiff43", ".ours40", ".bsdiff40"} {
			p, err := os.ReadFile(base + ext)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Patch(old, bytesReader(p))
			if err != nil || string(got) != string(want) {
				t.Errorf("Patch(%s%s) = %d bytes, %v; want %d bytes", name, ext, len(got), err, len(want))
			}
		}
	}
}

func armELFHeader() []byte {
	h := make([]byte, 52)
	copy(h, "\x7fELF\x01\x01\x01")
	h[18] = 40
	return h
}

func realtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("bsdiff")
	if err != nil {
		t.Fatalf("-update needs Debian's bsdiff: %v", err)
	}
	return p
}

func bytesReader(b []byte) *bytesReaderT { return &bytesReaderT{b: b} }

// bytesReaderT is a plain io.Reader (no io.ReaderAt), as a network stream.
type bytesReaderT struct{ b []byte }

func (r *bytesReaderT) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
