package manifest

import (
	"bytes"
	"errors"
	"testing"
)

// blockItems is threeItems with block digests on every payload, in blocks
// of 512 bytes over payloads made large enough to have several.
func blockItems(t testing.TB) (*Manifest, [][]byte) {
	t.Helper()
	m, _ := threeItems()
	var payloads [][]byte
	for i := range m.Items {
		p := bytes.Repeat([]byte{byte(0x40 + i)}, 1300+100*i)
		p[700] ^= byte(i + 1) // blocks differ from each other
		m.Items[i].Size, m.Items[i].Digest = uint64(len(p)), digest(p)
		if _, err := m.SetBlocks(i, p, MinBlockSize); err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	return m, payloads
}

func readBlocks(t testing.TB, pkg []byte) error {
	t.Helper()
	_, err := readAll(pkg, ring(t, loadKey(t, "test-ed25519")), Options{})
	return err
}

func TestBlockDigestsRoundTrip(t *testing.T) {
	m, payloads := blockItems(t)
	if m.Schema != SchemaBlocks {
		t.Fatalf("schema %d after SetBlocks, want %d", m.Schema, SchemaBlocks)
	}
	env := signed(t, m, loadKey(t, "test-ed25519"))
	pkg := pack(t, env, payloads)
	if err := readBlocks(t, pkg); err != nil {
		t.Fatalf("reading a schema-2 package: %v", err)
	}
	if got, want := m.Items[0].Blocks(), int64(3); got != want {
		t.Errorf("Blocks() = %d, want %d", got, want)
	}
}

func TestBlockDigestsRefuse(t *testing.T) {
	m, payloads := blockItems(t)
	env := signed(t, m, loadKey(t, "test-ed25519"))
	pkg := pack(t, env, payloads)
	// Where the first payload's second block and its list sit in the tar.
	list0 := bytes.Index(pkg, mustList(t, payloads[0]))
	data0 := bytes.Index(pkg, payloads[0])
	if list0 < 0 || data0 < 0 {
		t.Fatal("layout not found")
	}
	flip := func(off int) []byte {
		c := bytes.Clone(pkg)
		c[off] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name string
		pkg  []byte
		want error
	}{
		{"a byte of block 1", flip(data0 + 600), ErrBlock},
		{"a byte of the last block", flip(data0 + 1299), ErrBlock},
		{"a byte of the block list", flip(list0 + 40), ErrDigest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := readBlocks(t, tc.pkg); !errors.Is(err, tc.want) {
				t.Fatalf("readAll = %v, want %v", err, tc.want)
			}
		})
	}
	// A package without the list entry: the writer of an old format.
	old, _ := blockItems(t)
	for i := range old.Items {
		old.Items[i].BlockSize, old.Items[i].BlockRoot = 0, nil
	}
	old.Schema = SchemaVersion
	var buf bytes.Buffer
	w, err := NewWriter(&buf, signed(t, old, loadKey(t, "test-ed25519")), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		if err := w.WritePayload(bytes.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	// Swap in the schema-2 manifest: its items want lists the package lacks.
	mixed := append(bytes.Clone(pkg[:bytes.Index(pkg, payloads[0])-1536]), buf.Bytes()[bytes.Index(buf.Bytes(), payloads[0])-512:]...)
	if err := readBlocks(t, mixed); !errors.Is(err, ErrMissingPayload) {
		t.Fatalf("a schema-2 manifest over payloads without block lists: %v, want ErrMissingPayload", err)
	}
}

func TestBlockFieldsNeedSchema2(t *testing.T) {
	m, _ := blockItems(t)
	m.Schema = SchemaVersion
	if _, err := Encode(m); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode(schema 1 with block digests) = %v, want ErrInvalid", err)
	}
	m, _ = blockItems(t)
	m.Items[1].BlockSize = 1000
	if _, err := Encode(m); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode(block size 1000) = %v, want ErrInvalid", err)
	}
	m, _ = blockItems(t)
	m.Items[1].BlockRoot = m.Items[1].BlockRoot[:8]
	if _, err := Encode(m); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode(short root) = %v, want ErrInvalid", err)
	}
}

func TestCheckBlock(t *testing.T) {
	m, payloads := blockItems(t)
	it := m.Items[2]
	list := mustList(t, payloads[2])
	if err := it.CheckBlockList(list); err != nil {
		t.Fatal(err)
	}
	p := payloads[2]
	for j := int64(0); j < it.Blocks(); j++ {
		b := p[j*512 : min(int64(len(p)), (j+1)*512)]
		if err := it.CheckBlock(list, j, b); err != nil {
			t.Errorf("CheckBlock(%d) = %v", j, err)
		}
	}
	if err := it.CheckBlock(list, 0, p[512:1024]); !errors.Is(err, ErrBlock) {
		t.Errorf("CheckBlock(0, block 1's bytes) = %v, want ErrBlock", err)
	}
	if err := it.CheckBlock(list, it.Blocks(), nil); !errors.Is(err, ErrBlock) {
		t.Errorf("CheckBlock(out of range) = %v, want ErrBlock", err)
	}
	if err := it.CheckBlock(list, 0, p[:100]); !errors.Is(err, ErrBlock) {
		t.Errorf("CheckBlock(short) = %v, want ErrBlock", err)
	}
}

func mustList(t testing.TB, p []byte) []byte {
	t.Helper()
	list, _, err := BlockList(bytes.NewReader(p), int64(len(p)), MinBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	return list
}
