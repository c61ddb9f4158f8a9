package manifest

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

func BenchmarkVerify(b *testing.B) {
	for _, name := range []string{"test-ed25519", "test-p256"} {
		b.Run(name, func(b *testing.B) {
			key := loadKey(b, name)
			m, _ := threeItems()
			env := signed(b, m, key)
			keys := ring(b, key)
			b.SetBytes(int64(len(env)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Verify(env, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPackageStream reads a package with one 4 MiB payload: the cost
// of the container and digest layer per byte of image.
func BenchmarkPackageStream(b *testing.B) {
	key := loadKey(b, "test-ed25519")
	m, _ := threeItems()
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	m.Items = m.Items[:1]
	m.Items[0].Size, m.Items[0].Digest = uint64(len(payload)), digest(payload)
	pkg := pack(b, signed(b, m, key), [][]byte{payload})
	keys := ring(b, key)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(pkg)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := OpenPackage(bytes.NewReader(pkg), keys, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, r, err := p.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}
