package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// generic returns the manifest as a generic CBOR map, to be broken by a
// test and re-encoded with reencode.
func generic(t *testing.T, m *Manifest) map[any]any {
	t.Helper()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	var g map[any]any
	if err := cbor.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func reencode(t *testing.T, g map[any]any) []byte {
	t.Helper()
	em, _ := cbor.CoreDetEncOptions().EncMode()
	b, err := em.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func item0(g map[any]any) map[any]any { return g[uint64(6)].([]any)[0].(map[any]any) }

func TestDecodeRejects(t *testing.T) {
	m, _ := threeItems()
	good, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(g map[any]any)) []byte {
		g := generic(t, m)
		f(g)
		return reencode(t, g)
	}
	deep := append(bytes.Repeat([]byte{0x81}, 10000), 0x00)
	// A map with key 6 (items) whose array header claims 2^40 elements.
	hugeArray := []byte{0xa1, 0x06, 0x9b, 0, 0, 1, 0, 0, 0, 0, 0}
	// A map header claiming 10^6 pairs.
	hugeMap := []byte{0xba, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x01}
	// {0: 1, 0: 1}: the schema version twice.
	dupTop := []byte{0xa2, 0x00, 0x01, 0x00, 0x01}
	// An item whose digest key (12) appears twice: splice into a good item.
	dupItem := func() []byte {
		em, _ := cbor.CoreDetEncOptions().EncMode()
		g := generic(t, m)
		it := item0(g)
		d := it[uint64(12)].([]byte)
		itb, _ := em.Marshal(it)
		// Append a second "12: digest" pair and bump the map's pair count.
		extra, _ := em.Marshal(map[uint64][]byte{12: d})
		itb = append(itb, extra[1:]...)
		if itb[0] < 0xb7 {
			itb[0]++
		} else {
			t.Fatalf("item map header %x not small", itb[0])
		}
		g[uint64(6)].([]any)[0] = cbor.RawMessage(itb)
		return reencode(t, g)
	}()
	indefTop := append([]byte{0xbf}, good[1:]...) // definite → indefinite map
	indefTop = append(indefTop, 0xff)
	long := strings.Repeat("9", 255)

	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", make([]byte, MaxManifestSize+1), ErrTooLarge},
		{"10k nesting", deep, ErrMalformed},
		{"array header 2^40", hugeArray, ErrMalformed},
		{"map header 10^6 pairs", hugeMap, ErrMalformed},
		{"duplicate key top", dupTop, ErrMalformed},
		{"duplicate digest in item", dupItem, ErrMalformed},
		{"indefinite length map", indefTop, ErrMalformed},
		{"trailing bytes", append(append([]byte(nil), good...), 0x00), ErrMalformed},
		{"tag", append([]byte{0xd8, 0x20}, good...), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"not a map", []byte{0x83, 1, 2, 3}, ErrMalformed},
		{"text keys", mutate(func(g map[any]any) { g["x"] = 1 }), ErrMalformed},
		{"unknown critical top", mutate(func(g map[any]any) { g[uint64(42)] = 1 }), ErrUnknownCritical},
		{"unknown critical in item", mutate(func(g map[any]any) { item0(g)[uint64(40)] = "x" }), ErrUnknownCritical},
		{"unknown critical in check", mutate(func(g map[any]any) {
			item0(g)[uint64(16)].([]any)[0].(map[any]any)[uint64(9)] = 1
		}), ErrUnknownCritical},
		{"schema 3", mutate(func(g map[any]any) { g[uint64(0)] = 3 }), ErrSchemaVersion},
		{"schema missing", mutate(func(g map[any]any) { delete(g, uint64(0)) }), ErrSchemaVersion},
		{"255-char version", mutate(func(g map[any]any) { item0(g)[uint64(5)] = long }), ErrInvalid},
		{"version number overflow", mutate(func(g map[any]any) { item0(g)[uint64(5)] = "4294967296.1" }), ErrInvalid},
		{"size 2^32+1", mutate(func(g map[any]any) { item0(g)[uint64(11)] = uint64(1)<<32 + 1 }), ErrInvalid},
		{"size 2^64-1", mutate(func(g map[any]any) { item0(g)[uint64(11)] = ^uint64(0) }), ErrInvalid},
		{"negative size", mutate(func(g map[any]any) { item0(g)[uint64(11)] = -1 }), ErrMalformed},
		{"short digest", mutate(func(g map[any]any) { item0(g)[uint64(12)] = []byte{1} }), ErrInvalid},
		{"digest as text", mutate(func(g map[any]any) { item0(g)[uint64(12)] = strings.Repeat("a", 32) }), ErrMalformed},
		{"payload ../", mutate(func(g map[any]any) { item0(g)[uint64(10)] = "../boot" }), ErrPayloadName},
		{"payload absolute", mutate(func(g map[any]any) { item0(g)[uint64(10)] = "/dev/mtd0" }), ErrPayloadName},
		{"payload over-long", mutate(func(g map[any]any) { item0(g)[uint64(10)] = strings.Repeat("a", 101) }), ErrPayloadName},
		{"duplicate item id", mutate(func(g map[any]any) {
			g[uint64(6)].([]any)[1].(map[any]any)[uint64(0)] = item0(g)[uint64(0)]
		}), ErrInvalid},
		{"unknown kind", mutate(func(g map[any]any) { item0(g)[uint64(2)] = 9 }), ErrInvalid},
		{"delta without source digest", mutate(func(g map[any]any) { delete(item0(g), uint64(13)) }), ErrInvalid},
		{"no items", mutate(func(g map[any]any) { delete(g, uint64(6)) }), ErrInvalid},
		{"invalid utf-8", mutate(func(g map[any]any) { item0(g)[uint64(0)] = "\xff" }), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if !errors.Is(err, tc.want) || got != nil {
				t.Errorf("Decode = %v, %v; want nil, %v", got, err, tc.want)
			}
		})
	}
}

func TestDecodeIgnoresNegativeKeys(t *testing.T) {
	m, _ := threeItems()
	g := generic(t, m)
	g[int64(-1)] = "optional extension"
	item0(g)[int64(-5)] = []byte{1, 2, 3}
	got, err := Decode(reencode(t, g))
	if err != nil {
		t.Fatalf("Decode(with negative keys) = %v", err)
	}
	if got.Items[0].ID != m.Items[0].ID {
		t.Errorf("Decode: items[0].id = %q, want %q", got.Items[0].ID, m.Items[0].ID)
	}
}
