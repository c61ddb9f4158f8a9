package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Block digests (schema 2). A payload fetched over a radio link for days
// must not be found corrupt only after its last byte: with block digests a
// node checks every block on arrival and asks again for that block alone.
// The block list is not in the manifest (it would cost 32 bytes per block
// in every manifest sent over the air, also to nodes that need no payload);
// the signed manifest holds its SHA-256 (BlockRoot), and the list travels
// in the package as its own entry, checked against the root before any
// block is.
const (
	MinBlockSize = 512     // a tar record: payloads start on one
	MaxBlockSize = 1 << 20 // the largest block a node buffers
	// DefaultBlockSize is what the package builder uses: 4 KiB is a
	// flash page on NAND and about 14 s of a 2.4 kbit/s link, so a
	// corrupt block costs little to fetch again.
	DefaultBlockSize = 4096
	// MaxBlockList bounds a block list (32 bytes a block): 32,768 blocks,
	// 128 MiB of payload at 4 KiB. A larger payload takes larger blocks.
	MaxBlockList = 1 << 20
)

// ErrBlock is a block whose digest is not the one its block list gives.
var ErrBlock = errors.New("manifest: block digest mismatch")

// BlockListName is the package entry that holds payload's block list.
func BlockListName(payload string) string { return payload + ".blocks" }

// Blocks returns the number of blocks of the item's payload (0 without
// block digests).
func (it *Item) Blocks() int64 {
	if it.BlockSize == 0 {
		return 0
	}
	bs := uint64(it.BlockSize)
	return int64((it.Size + bs - 1) / bs)
}

// BlockListSize is the size in bytes of the item's block list.
func (it *Item) BlockListSize() int64 { return it.Blocks() * DigestSize }

func checkBlocks(schema uint, it Item) error {
	if it.BlockSize == 0 && it.BlockRoot == nil {
		return nil
	}
	switch {
	case schema < SchemaBlocks:
		return fmt.Errorf("block digests need schema %d", SchemaBlocks)
	case it.BlockSize < MinBlockSize || it.BlockSize > MaxBlockSize || bits.OnesCount32(it.BlockSize) != 1:
		return fmt.Errorf("block size %d: a power of two from %d to %d", it.BlockSize, MinBlockSize, MaxBlockSize)
	case len(it.BlockRoot) != DigestSize:
		return fmt.Errorf("block root: want %d bytes, have %d", DigestSize, len(it.BlockRoot))
	case it.BlockListSize() > MaxBlockList:
		return fmt.Errorf("%d blocks: the list would exceed %d bytes; use larger blocks", it.Blocks(), MaxBlockList)
	}
	return nil
}

// BlockList computes the block list of a payload read from r (size bytes)
// in blocks of bs bytes, and its root.
func BlockList(r io.Reader, size int64, bs uint32) (list, root []byte, err error) {
	if bs < MinBlockSize || bs > MaxBlockSize || bits.OnesCount32(bs) != 1 {
		return nil, nil, fmt.Errorf("manifest: block size %d: a power of two from %d to %d", bs, MinBlockSize, MaxBlockSize)
	}
	buf := make([]byte, bs)
	for left := size; left > 0; {
		n := min(left, int64(bs))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return nil, nil, fmt.Errorf("manifest: block list: %w", err)
		}
		d := sha256.Sum256(buf[:n])
		list = append(list, d[:]...)
		left -= n
	}
	r0 := sha256.Sum256(list)
	return list, r0[:], nil
}

// SetBlocks gives the item block digests of its payload p, and the manifest
// schema 2. The builder calls it before signing.
func (m *Manifest) SetBlocks(item int, p []byte, bs uint32) ([]byte, error) {
	it := &m.Items[item]
	list, root, err := BlockList(bytes.NewReader(p), int64(len(p)), bs)
	if err != nil {
		return nil, err
	}
	it.BlockSize, it.BlockRoot = bs, root
	m.Schema = SchemaBlocks
	return list, nil
}

// CheckBlockList checks a block list against the item's signed root.
func (it *Item) CheckBlockList(list []byte) error {
	if it.BlockSize == 0 {
		return fmt.Errorf("%w: item %s has no block digests", ErrContainer, it.ID)
	}
	if int64(len(list)) != it.BlockListSize() {
		return fmt.Errorf("%w: block list of %s is %d bytes, want %d", ErrContainer, it.Payload, len(list), it.BlockListSize())
	}
	if r := sha256.Sum256(list); !bytes.Equal(r[:], it.BlockRoot) {
		return fmt.Errorf("%w: block list of %s", ErrDigest, it.Payload)
	}
	return nil
}

// CheckBlock checks block j of the item's payload against a block list
// that CheckBlockList accepted.
func (it *Item) CheckBlock(list []byte, j int64, p []byte) error {
	if j < 0 || j >= it.Blocks() {
		return fmt.Errorf("%w: block %d of %s out of range", ErrBlock, j, it.Payload)
	}
	want := int64(it.BlockSize)
	if j == it.Blocks()-1 {
		want = int64(it.Size) - j*int64(it.BlockSize)
	}
	if int64(len(p)) != want {
		return fmt.Errorf("%w: block %d of %s has %d bytes, want %d", ErrBlock, j, it.Payload, len(p), want)
	}
	d := sha256.Sum256(p)
	if !bytes.Equal(d[:], list[j*DigestSize:(j+1)*DigestSize]) {
		return fmt.Errorf("%w: block %d of %s", ErrBlock, j, it.Payload)
	}
	return nil
}
