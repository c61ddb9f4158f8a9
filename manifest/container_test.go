package manifest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readAll opens a package and reads every payload to the end, as the agent
// does. It returns the payloads it trusted (those read to io.EOF).
func readAll(data []byte, keys *Keyring, opt Options) (map[string][]byte, error) {
	p, err := OpenPackage(bytes.NewReader(data), keys, opt)
	if err != nil {
		return nil, err
	}
	got := map[string][]byte{}
	for {
		it, r, err := p.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		got[it.Payload] = b
	}
}

type entry struct {
	name string
	typ  byte
	size int64 // header size; -1 = len(data)
	data []byte
}

func rawTar(t *testing.T, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		if e.typ == 0 {
			e.typ = tar.TypeReg
		}
		if e.size < 0 {
			e.size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: e.typ, Size: e.size, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPackageRoundTrip(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	pkg := pack(t, signed(t, m, ed), payloads)
	got, err := readAll(pkg, ring(t, ed), Options{Floor: 6})
	if err != nil {
		t.Fatalf("readAll = %v", err)
	}
	for i, it := range m.Items {
		if !bytes.Equal(got[it.Payload], payloads[i]) {
			t.Errorf("payload %s differs", it.Payload)
		}
	}
	// Tar padding of another writer (GNU tar pads to 10 KiB) is accepted.
	padded := append(append([]byte(nil), pkg...), make([]byte, 9216)...)
	if _, err := readAll(padded, ring(t, ed), Options{Floor: 6}); err != nil {
		t.Errorf("readAll(zero padded) = %v", err)
	}
}

func TestPackageSkipsUnreadItemButChecksDigest(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	payloads[0] = append([]byte(nil), payloads[0]...)
	payloads[0][5] ^= 1
	env := signed(t, m, ed)
	var buf bytes.Buffer
	buf.Write(rawTar(t, entry{name: ManifestName, size: -1, data: env},
		entry{name: m.Items[0].Payload, size: -1, data: payloads[0]},
		entry{name: m.Items[1].Payload, size: -1, data: payloads[1]},
		entry{name: m.Items[2].Payload, size: -1, data: payloads[2]}))
	p, err := OpenPackage(&buf, ring(t, ed), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Next(); err != nil { // not read
		t.Fatal(err)
	}
	if _, _, err := p.Next(); !errors.Is(err, ErrDigest) {
		t.Errorf("Next after an unread corrupt payload = %v, want ErrDigest", err)
	}
	if _, _, err := p.Next(); !errors.Is(err, ErrDigest) {
		t.Errorf("Next is not sticky: %v", err)
	}
}

func TestPackageRejects(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	keys := ring(t, ed)
	m, payloads := threeItems()
	env := signed(t, m, ed)
	man := entry{name: ManifestName, size: -1, data: env}
	e := func(i int) entry { return entry{name: m.Items[i].Payload, size: -1, data: payloads[i]} }
	flipped := append([]byte(nil), payloads[1]...)
	flipped[len(flipped)-1] ^= 0x80
	unsignedPayload, _ := Encode(m)
	expiring := *m
	expiring.Expires = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	good := pack(t, env, payloads)

	for _, tc := range []struct {
		name string
		pkg  []byte
		opt  Options
		want error
	}{
		{"empty stream", nil, Options{}, ErrTruncated},
		{"unsigned", rawTar(t, entry{name: UnsignedManifestName, size: -1, data: unsignedPayload}, e(0), e(1), e(2)), Options{}, ErrUnsigned},
		{"manifest not first", rawTar(t, e(0), man, e(1), e(2)), Options{}, ErrContainer},
		{"manifest entry too large", rawTar(t, entry{name: ManifestName, size: -1, data: make([]byte, MaxManifestSize+1)}), Options{}, ErrTooLarge},
		{"trailing bytes after signed manifest", rawTar(t, entry{name: ManifestName, size: -1, data: append(append([]byte(nil), env...), 0)}, e(0), e(1), e(2)), Options{}, ErrMalformedSignature},
		{"payload digest mismatch", rawTar(t, man, e(0), entry{name: m.Items[1].Payload, size: -1, data: flipped}, e(2)), Options{}, ErrDigest},
		{"payload not in manifest", rawTar(t, man, e(0), entry{name: "extra.bin", size: -1, data: []byte("x")}, e(1), e(2)), Options{}, ErrUnlisted},
		{"payload not in manifest after all", rawTar(t, man, e(0), e(1), e(2), entry{name: "extra.bin", size: -1, data: []byte("x")}), Options{}, ErrUnlisted},
		{"payload ../", rawTar(t, man, entry{name: "../" + m.Items[0].Payload, size: -1, data: payloads[0]}, e(1), e(2)), Options{}, ErrPayloadName},
		{"payload absolute", rawTar(t, man, entry{name: "/" + m.Items[0].Payload, size: -1, data: payloads[0]}, e(1), e(2)), Options{}, ErrPayloadName},
		{"payload over-long", rawTar(t, man, entry{name: string(bytes.Repeat([]byte("a"), 300)), size: -1, data: payloads[0]}, e(1), e(2)), Options{}, ErrPayloadName},
		{"payload symlink", rawTar(t, man, entry{name: m.Items[0].Payload, typ: tar.TypeSymlink, size: 0}, e(1), e(2)), Options{}, ErrContainer},
		{"listed payload missing", rawTar(t, man, e(0), e(2)), Options{}, ErrMissingPayload},
		{"last listed payload missing", rawTar(t, man, e(0), e(1)), Options{}, ErrMissingPayload},
		{"payload twice", rawTar(t, man, e(0), e(0), e(1), e(2)), Options{}, ErrContainer},
		{"declared size larger than manifest (endless data)", rawTar(t, man, entry{name: m.Items[0].Payload, size: 1 << 20, data: make([]byte, 1<<20)}, e(1), e(2)), Options{}, ErrPayloadSize},
		{"declared size smaller than manifest", rawTar(t, man, entry{name: m.Items[0].Payload, size: -1, data: payloads[0][:10]}, e(1), e(2)), Options{}, ErrPayloadSize},
		{"garbage after end", append(append([]byte(nil), good...), "evil"...), Options{}, ErrTrailingData},
		{"too much padding after end", append(append([]byte(nil), good...), make([]byte, 2*maxTrailer)...), Options{}, ErrTrailingData},
		{"replay", good, Options{Floor: m.Sequence}, ErrReplay},
		{"rollback", good, Options{Floor: m.Sequence + 1}, ErrRollback},
		{"expired", pack(t, signed(t, &expiring, ed), payloads), Options{Now: func() time.Time { return time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) }}, ErrExpired},
		{"not a tar", bytes.Repeat([]byte{0x42}, 2048), Options{}, ErrContainer},
		// A tailored package may leave payloads out, never add or reorder.
		{"tailored: payload not in manifest", rawTar(t, man, e(0), entry{name: "extra.bin", size: -1, data: []byte("x")}), Options{Tailored: true}, ErrUnlisted},
		{"tailored: out of order", rawTar(t, man, e(2), e(0)), Options{Tailored: true}, ErrContainer},
		{"tailored: payload twice", rawTar(t, man, e(1), e(1)), Options{Tailored: true}, ErrContainer},
		{"tailored: digest mismatch", rawTar(t, man, entry{name: m.Items[1].Payload, size: -1, data: flipped}), Options{Tailored: true}, ErrDigest},
		{"tailored: replay", rawTar(t, man, e(1)), Options{Tailored: true, Floor: m.Sequence}, ErrReplay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.pkg, keys, tc.opt)
			if !errors.Is(err, tc.want) || got != nil {
				t.Errorf("readAll = %d payloads, %v; want none, %v", len(got), err, tc.want)
			}
		})
	}
}

// TestPackageTruncatedEverywhere cuts a good package at every 512-byte
// block boundary (header/data/marker boundaries all fall on one) and at
// every byte of the first two blocks: each cut must be refused.
func TestPackageTruncatedEverywhere(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	pkg := pack(t, signed(t, m, ed), payloads)
	cuts := []int{}
	for n := 0; n < len(pkg); n += 512 {
		cuts = append(cuts, n)
	}
	for n := 1; n < 1024; n += 37 {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		got, err := readAll(pkg[:n], ring(t, ed), Options{})
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrContainer) && !errors.Is(err, ErrMalformedSignature) || got != nil {
			t.Errorf("readAll(package[:%d] of %d) = %d payloads, %v; want a truncation error", n, len(pkg), len(got), err)
		}
	}
}

func TestPayloadReaderNeverEOFBeforeDigest(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	bad := append([]byte(nil), payloads[0]...)
	bad[0] ^= 1
	pkg := rawTar(t, entry{name: ManifestName, size: -1, data: signed(t, m, ed)},
		entry{name: m.Items[0].Payload, size: -1, data: bad})
	p, err := OpenPackage(bytes.NewReader(pkg), ring(t, ed), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	var total int
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			t.Fatalf("Read returned io.EOF after %d bytes of a corrupt payload", total)
		}
		if err != nil {
			if !errors.Is(err, ErrDigest) {
				t.Errorf("Read error = %v, want ErrDigest", err)
			}
			break
		}
	}
	if total != len(bad) {
		t.Errorf("read %d bytes, want %d", total, len(bad))
	}
}

// manifestOnly serves the first n bytes of data, then fails: a package
// whose payloads have not arrived yet.
type manifestOnly struct {
	data []byte
	n    int
	off  int
}

func (r *manifestOnly) Read(b []byte) (int, error) {
	if r.off >= r.n {
		return 0, errors.New("payloads not here yet")
	}
	n := copy(b, r.data[r.off:r.n])
	r.off += n
	return n, nil
}

func TestOpenPackageReadsOnlyTheManifestEntry(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	env := signed(t, m, ed)
	pkg := pack(t, env, payloads)
	// The manifest entry: one header block and the envelope padded to 512.
	n := 512 + int(roundBlock(int64(len(env))))
	p, err := OpenPackage(&manifestOnly{data: pkg, n: n}, ring(t, ed), Options{})
	if err != nil {
		t.Fatalf("OpenPackage with only the manifest entry available = %v", err)
	}
	if p.Manifest().Sequence != m.Sequence {
		t.Errorf("Manifest().Sequence = %d, want %d", p.Manifest().Sequence, m.Sequence)
	}
	if _, _, err := p.Next(); err == nil {
		t.Errorf("Next without payload bytes succeeded")
	}
}

func TestReadManifest(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	env := signed(t, m, ed)
	for name, in := range map[string][]byte{"package": pack(t, env, payloads), "bare COSE": env} {
		got, err := ReadManifest(bytes.NewReader(in), ring(t, ed))
		if err != nil || got.Sequence != m.Sequence {
			t.Errorf("ReadManifest(%s) = %v, %v", name, got, err)
		}
		if _, err := ReadManifest(bytes.NewReader(in), ring(t, loadKey(t, "test-p256"))); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("ReadManifest(%s, other key) = %v, want ErrUnknownKey", name, err)
		}
	}
	if _, err := ReadManifest(bytes.NewReader(nil), ring(t, ed)); !errors.Is(err, ErrTruncated) {
		t.Errorf("ReadManifest(empty) = %v, want ErrTruncated", err)
	}
}

// TestSignatureBeforeFields: a manifest that is bad in every field but
// signed by an unknown key is refused for the key, never for a field: no
// field is looked at before the signature.
func TestSignatureBeforeFields(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	m, payloads := threeItems()
	m.Sequence = 0 // would be a replay
	m.Items[0].DeviceTypes = []string{"other"}
	g := generic(t, m)
	g[uint64(42)] = "unknown critical"
	g[uint64(0)] = 99 // schema
	env, err := Sign(reencode(t, g), loadKey(t, "test-ed25519-next"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(rawTar(t, entry{name: ManifestName, size: -1, data: env}, entry{name: "x", size: -1, data: payloads[0]}))
	if _, err := OpenPackage(&buf, ring(t, ed), Options{Floor: 5}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("OpenPackage = %v, want ErrUnknownKey", err)
	}
}

// TestTailoredPackage: a package carrying only some payloads under the
// manifest signed for all is read when the reader says it may be, and
// Absent names what was left out.
func TestTailoredPackage(t *testing.T) {
	ed := loadKey(t, "test-ed25519")
	keys := ring(t, ed)
	m, payloads := threeItems()
	env := signed(t, m, ed)
	man := entry{name: ManifestName, size: -1, data: env}
	e := func(i int) entry { return entry{name: m.Items[i].Payload, size: -1, data: payloads[i]} }
	for _, tc := range []struct {
		name    string
		entries []entry
		absent  []string
	}{
		{"middle left out", []entry{man, e(0), e(2)}, []string{m.Items[1].Payload}},
		{"only the last", []entry{man, e(2)}, []string{m.Items[0].Payload, m.Items[1].Payload}},
		{"only the first", []entry{man, e(0)}, []string{m.Items[1].Payload, m.Items[2].Payload}},
		{"all there", []entry{man, e(0), e(1), e(2)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkg := rawTar(t, tc.entries...)
			if _, err := readAll(pkg, keys, Options{}); !errors.Is(err, ErrMissingPayload) && tc.absent != nil {
				t.Fatalf("strict reader: %v, want ErrMissingPayload", err)
			}
			p, err := OpenPackage(bytes.NewReader(pkg), keys, Options{Tailored: true})
			if err != nil {
				t.Fatal(err)
			}
			for {
				_, r, err := p.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next = %v", err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.absent, p.Absent()); diff != "" {
				t.Errorf("Absent (-want +got):\n%s", diff)
			}
		})
	}
}
