package manifest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Entry names of the manifest in a package. The signed one is what nodes
// accept; the unsigned one is what `meterpkg build` leaves for `meterpkg
// sign` when the signing key lives on another host.
const (
	ManifestName         = "manifest.cose"
	UnsignedManifestName = "manifest.cbor"
)

// maxTrailer bounds the zero padding accepted after the end-of-archive
// marker (tar writers pad to their record size, 10 KiB for GNU tar).
const maxTrailer = 64 << 10

// Writer writes a package container: the manifest entry first, then one
// entry per payload, in manifest order. Entries are plain ustar regular
// files with mode 0644 and time 0, so a package is reproducible.
type Writer struct {
	tw    *tar.Writer
	items []Item
	next  int
}

// NewWriter writes the manifest entry and returns a Writer for the
// payloads. manifest is a signed COSE_Sign1 (Sign's output), or with
// unsigned true the bare CBOR payload (Encode's output). The items of the
// manifest fix which payloads follow, in which order.
func NewWriter(w io.Writer, manifest []byte, unsigned bool) (*Writer, error) {
	var payload []byte
	name := ManifestName
	if unsigned {
		name = UnsignedManifestName
		payload = manifest
	} else {
		p, _, err := PayloadUnverified(manifest)
		if err != nil {
			return nil, err
		}
		payload = p
	}
	m, err := Decode(payload)
	if err != nil {
		return nil, err
	}
	pw := &Writer{tw: tar.NewWriter(w), items: m.Items}
	if err := pw.header(name, int64(len(manifest))); err != nil {
		return nil, err
	}
	if _, err := pw.tw.Write(manifest); err != nil {
		return nil, fmt.Errorf("manifest: write package: %w", err)
	}
	return pw, nil
}

func (w *Writer) header(name string, size int64) error {
	err := w.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	})
	if err != nil {
		return fmt.Errorf("manifest: write package: %w", err)
	}
	return nil
}

// WritePayload copies the next item's payload from r. It checks the size
// and digest against the manifest and fails on a mismatch (the package is
// then unusable: discard it).
func (w *Writer) WritePayload(r io.Reader) error {
	if w.next >= len(w.items) {
		return fmt.Errorf("%w: more payloads than manifest items", ErrUnlisted)
	}
	it := w.items[w.next]
	if it.BlockSize != 0 {
		// The block list goes before the payload, so a node checks
		// every block as it streams: read the payload once to make it.
		p, err := io.ReadAll(io.LimitReader(r, int64(it.Size)+1))
		if err != nil {
			return fmt.Errorf("manifest: write payload %s: %w", it.Payload, err)
		}
		list, _, err := BlockList(bytes.NewReader(p), int64(len(p)), it.BlockSize)
		if err != nil {
			return err
		}
		if int64(len(p)) == int64(it.Size) {
			if err := it.CheckBlockList(list); err != nil {
				return err
			}
		}
		if err := w.header(BlockListName(it.Payload), int64(len(list))); err != nil {
			return err
		}
		if _, err := w.tw.Write(list); err != nil {
			return fmt.Errorf("manifest: write package: %w", err)
		}
		r = bytes.NewReader(p)
	}
	if err := w.header(it.Payload, int64(it.Size)); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w.tw, h), io.LimitReader(r, int64(it.Size)+1))
	if err != nil {
		return fmt.Errorf("manifest: write payload %s: %w", it.Payload, err)
	}
	if n != int64(it.Size) {
		return fmt.Errorf("%w: %s: %d bytes, manifest says %d", ErrPayloadSize, it.Payload, n, it.Size)
	}
	if !bytes.Equal(h.Sum(nil), it.Digest) {
		return fmt.Errorf("%w: %s", ErrDigest, it.Payload)
	}
	w.next++
	return nil
}

// Skip leaves the next item's payload out: the package becomes one
// tailored to the nodes that do not need it (Options.Tailored), under the
// same signed manifest.
func (w *Writer) Skip() error {
	if w.next >= len(w.items) {
		return fmt.Errorf("%w: more payloads than manifest items", ErrUnlisted)
	}
	w.next++
	return nil
}

// Close writes the end-of-archive marker; every payload must be written
// or skipped.
func (w *Writer) Close() error {
	if w.next != len(w.items) {
		return fmt.Errorf("%w: %d of %d payloads written", ErrMissingPayload, w.next, len(w.items))
	}
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("manifest: write package: %w", err)
	}
	return nil
}

// Options are the node's side of accepting a package.
type Options struct {
	// Floor is the highest package sequence number this node has accepted
	// (persisted in the journal). A package must have a greater one.
	Floor uint64
	// Now, when set, is used to refuse an expired manifest.
	Now func() time.Time
	// Tailored accepts a package whose container leaves out payloads of
	// its manifest (a head-end's package tailored to one node's install
	// path, under the manifest signed for all): Next skips them, and
	// Absent names them at the end. The caller must then refuse the
	// package if it needs an absent payload. Unlisted payloads, payloads
	// out of order and block lists without their payload are still
	// refused.
	Tailored bool
}

// CheckSequence refuses a replayed (equal) or older sequence number.
func CheckSequence(m *Manifest, floor uint64) error {
	switch {
	case m.Sequence == floor:
		return fmt.Errorf("%w: sequence %d", ErrReplay, m.Sequence)
	case m.Sequence < floor:
		return fmt.Errorf("%w: sequence %d, floor %d", ErrRollback, m.Sequence, floor)
	}
	return nil
}

// Package is a package being read from a stream: the verified manifest,
// then the payloads one by one.
type Package struct {
	m    *Manifest
	kid  []byte
	src  *countingReader
	tr   *tar.Reader
	next int            // index of the next expected item
	cur  *PayloadReader // the payload being read, if any
	end  int64          // stream offset just past the last entry's data
	err  error          // sticky
	done bool
	// tailored: listed payloads may be absent (Options.Tailored)
	tailored bool
	absent   []string
}

// OpenPackage reads the manifest entry from r, verifies its signature
// against keys, decodes it, and checks expiry and the sequence number —
// in that order, so that no manifest field is acted on before the
// signature is checked. Nothing after the manifest entry is read yet.
func OpenPackage(r io.Reader, keys *Keyring, opt Options) (*Package, error) {
	src := &countingReader{r: r}
	tr := tar.NewReader(src)
	hdr, err := tr.Next()
	if err != nil {
		return nil, containerErr(err, "manifest entry")
	}
	switch {
	case hdr.Name == UnsignedManifestName:
		return nil, ErrUnsigned
	case hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg:
		return nil, fmt.Errorf("%w: first entry is %q (type %q), want %s", ErrContainer, hdr.Name, hdr.Typeflag, ManifestName)
	case hdr.Size < 0:
		return nil, fmt.Errorf("%w: manifest entry size %d", ErrContainer, hdr.Size)
	case hdr.Size > MaxManifestSize:
		return nil, fmt.Errorf("%w: manifest entry is %d bytes, max %d", ErrTooLarge, hdr.Size, MaxManifestSize)
	}
	envelope := make([]byte, hdr.Size) // bounded by MaxManifestSize
	if _, err := io.ReadFull(tr, envelope); err != nil {
		return nil, containerErr(err, "manifest entry")
	}
	m, kid, err := Verify(envelope, keys)
	if err != nil {
		return nil, err
	}
	if opt.Now != nil && m.Expires != 0 && opt.Now().Unix() >= m.Expires {
		return nil, fmt.Errorf("%w: at %d", ErrExpired, m.Expires)
	}
	if err := CheckSequence(m, opt.Floor); err != nil {
		return nil, err
	}
	return &Package{m: m, kid: kid, src: src, tr: tr, end: src.n, tailored: opt.Tailored}, nil
}

// Manifest returns the verified manifest. The caller must not modify it.
func (p *Package) Manifest() *Manifest { return p.m }

// KeyID returns the id of the key that signed the manifest.
func (p *Package) KeyID() []byte { return p.kid }

// Select selects this node's items; see Manifest.Select.
func (p *Package) Select(node NodeInfo) (Plan, error) { return p.m.Select(node) }

// Next returns the next payload in container order (which is manifest
// order) and a reader of its bytes. The reader hashes as it streams and
// its final Read returns an error wrapping ErrDigest on a mismatch (or
// ErrTruncated on a short payload) instead of io.EOF: the caller may write
// the bytes where they go (the idle slot) but must not trust or use them
// until the reader has returned io.EOF.
//
// A payload not read to the end is drained and verified by the next call
// to Next, so an unwanted item is skipped with its digest still checked.
// After the last payload Next returns io.EOF once it has checked that every
// listed payload was present, that the end-of-archive marker is there, and
// that nothing but zero padding follows. Errors are sticky.
func (p *Package) Next() (Item, *PayloadReader, error) {
	if p.err != nil {
		return Item{}, nil, p.err
	}
	if p.done {
		return Item{}, nil, io.EOF
	}
	it, r, err := p.next1()
	if err != nil {
		if err == io.EOF {
			p.done = true
		} else {
			p.err = err
		}
		return Item{}, nil, err
	}
	return it, r, nil
}

// entryItem finds the item a container entry belongs to: its payload, or
// its block list. -1: none.
func (p *Package) entryItem(name string) (idx int, isList bool) {
	for i, it := range p.m.Items {
		switch name {
		case it.Payload:
			return i, false
		case BlockListName(it.Payload):
			return i, true
		}
	}
	return -1, false
}

// Absent lists the payloads of a tailored package (Options.Tailored) that
// its container left out, once Next has returned io.EOF. The caller
// refuses the package if it needs one of them.
func (p *Package) Absent() []string { return p.absent }

func (p *Package) next1() (Item, *PayloadReader, error) {
	if p.cur != nil {
		if _, err := io.Copy(io.Discard, p.cur); err != nil {
			return Item{}, nil, err
		}
		p.end = p.src.n
		p.cur = nil
	}
	hdr, err := p.tr.Next()
	if err == io.EOF {
		return Item{}, nil, p.finish()
	}
	if err != nil {
		return Item{}, nil, containerErr(err, "payload header")
	}
	if hdr.Typeflag != tar.TypeReg {
		return Item{}, nil, fmt.Errorf("%w: entry %q has type %q, want a regular file", ErrContainer, hdr.Name, hdr.Typeflag)
	}
	if err := CheckPayloadName(hdr.Name); err != nil {
		return Item{}, nil, err
	}
	idx, isList := p.entryItem(hdr.Name)
	switch {
	case idx < 0:
		return Item{}, nil, fmt.Errorf("%w: %q", ErrUnlisted, hdr.Name)
	case idx < p.next:
		return Item{}, nil, fmt.Errorf("%w: payload %q appears twice, or out of order", ErrContainer, hdr.Name)
	case idx > p.next && !p.tailored:
		return Item{}, nil, fmt.Errorf("%w: payload %q (item %d) before %q", ErrMissingPayload, hdr.Name, idx, p.m.Items[p.next].Payload)
	}
	for ; p.next < idx; p.next++ {
		p.absent = append(p.absent, p.m.Items[p.next].Payload)
	}
	var list []byte
	if it := p.m.Items[idx]; it.BlockSize != 0 {
		if !isList {
			return Item{}, nil, fmt.Errorf("%w: %q without its block list", ErrMissingPayload, hdr.Name)
		}
		if hdr.Size != it.BlockListSize() {
			return Item{}, nil, fmt.Errorf("%w: block list of %q is %d bytes, want %d", ErrPayloadSize, it.Payload, hdr.Size, it.BlockListSize())
		}
		list = make([]byte, hdr.Size) // bounded by MaxBlockList (Validate)
		if _, err := io.ReadFull(p.tr, list); err != nil {
			return Item{}, nil, containerErr(err, "block list "+it.Payload)
		}
		if err := it.CheckBlockList(list); err != nil {
			return Item{}, nil, err
		}
		if hdr, err = p.tr.Next(); err != nil {
			return Item{}, nil, containerErr(err, "payload header")
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Name != it.Payload {
			return Item{}, nil, fmt.Errorf("%w: %q (type %q) where payload %q belongs", ErrMissingPayload, hdr.Name, hdr.Typeflag, it.Payload)
		}
	} else if isList {
		return Item{}, nil, fmt.Errorf("%w: a block list %q for an item without block digests", ErrUnlisted, hdr.Name)
	}
	it := p.m.Items[idx]
	if hdr.Size < 0 || uint64(hdr.Size) != it.Size {
		return Item{}, nil, fmt.Errorf("%w: %q is %d bytes in the container, %d in the manifest", ErrPayloadSize, hdr.Name, hdr.Size, it.Size)
	}
	p.next++
	p.cur = &PayloadReader{r: p.tr, name: it.Payload, left: int64(it.Size), want: it.Digest, h: sha256.New()}
	if list != nil {
		p.cur.item, p.cur.list, p.cur.bh = it, list, sha256.New()
	}
	return it, p.cur, nil
}

// finish runs at the end-of-archive: every item seen, marker present,
// nothing but zeros after it.
func (p *Package) finish() error {
	// tar.Reader reads no further than it needs: seeing two zero blocks
	// moves the stream 1024 bytes past the padded end of the last entry. A
	// stream that simply stops there is a truncated package.
	if p.src.n < roundBlock(p.end)+1024 {
		return fmt.Errorf("%w: no end-of-archive marker", ErrTruncated)
	}
	if p.next < len(p.m.Items) && !p.tailored {
		return fmt.Errorf("%w: %q", ErrMissingPayload, p.m.Items[p.next].Payload)
	}
	for ; p.next < len(p.m.Items); p.next++ {
		p.absent = append(p.absent, p.m.Items[p.next].Payload)
	}
	var buf [4096]byte
	total := 0
	for {
		n, err := p.src.Read(buf[:])
		for _, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("%w: non-zero byte after the end-of-archive marker", ErrTrailingData)
			}
		}
		total += n
		if total > maxTrailer {
			return fmt.Errorf("%w: more than %d bytes after the end-of-archive marker", ErrTrailingData, maxTrailer)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("manifest: read package: %w", err)
		}
	}
}

func roundBlock(n int64) int64 { return (n + 511) &^ 511 }

// PayloadReader streams one payload. It returns at most the manifest's
// size and hashes everything it returns; at the end it returns io.EOF only
// if the SHA-256 matches the manifest, and an error wrapping ErrDigest
// otherwise. Errors are sticky.
//
// With block digests (schema 2) it also checks every block as it ends and
// fails with an error wrapping ErrBlock at the first bad one, so a corrupt
// payload stops the install at the block, not after the last byte.
type PayloadReader struct {
	r    io.Reader
	name string
	left int64
	want []byte
	h    hash.Hash
	err  error
	// block digests, when the item has them
	item  Item
	list  []byte
	bh    hash.Hash
	block int64 // index of the block being hashed
	inBlk int64 // bytes of it hashed so far
}

// blocks feeds p to the block hasher and checks each block that ends.
func (r *PayloadReader) blocks(p []byte) error {
	bs := int64(r.item.BlockSize)
	for len(p) > 0 {
		want := bs
		if r.block == r.item.Blocks()-1 {
			want = int64(r.item.Size) - r.block*bs
		}
		n := min(int64(len(p)), want-r.inBlk)
		r.bh.Write(p[:n])
		r.inBlk += n
		p = p[n:]
		if r.inBlk == want {
			d := r.bh.Sum(nil)
			if !bytes.Equal(d, r.list[r.block*DigestSize:(r.block+1)*DigestSize]) {
				return fmt.Errorf("%w: block %d of %s", ErrBlock, r.block, r.name)
			}
			r.bh.Reset()
			r.block++
			r.inBlk = 0
		}
	}
	return nil
}

func (r *PayloadReader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		if !bytes.Equal(r.h.Sum(nil), r.want) {
			r.err = fmt.Errorf("%w: %s", ErrDigest, r.name)
		} else {
			r.err = io.EOF
		}
		return 0, r.err
	}
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	n, err := r.r.Read(b)
	r.h.Write(b[:n])
	r.left -= int64(n)
	if r.list != nil {
		if berr := r.blocks(b[:n]); berr != nil {
			r.err = berr
			return n, berr
		}
	}
	if err == io.EOF && r.left > 0 {
		err = fmt.Errorf("%w: payload %s short by %d bytes", ErrTruncated, r.name, r.left)
	} else if err == io.EOF {
		err = nil // the digest check above decides on the next call
	} else if err != nil {
		err = containerErr(err, "payload "+r.name)
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

func containerErr(err error, where string) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: in %s", ErrTruncated, where)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, tar.ErrInsecurePath):
		return fmt.Errorf("%w: %s: %v", ErrContainer, where, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrContainer, where, err)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// ReadManifest reads a verified manifest from r, which holds either a
// package (only its manifest entry is read) or a bare COSE_Sign1 manifest
// (as `meterupd request PACKAGE_OR_MANIFEST` accepts). The sequence number
// is not checked: the caller only reads, it installs nothing.
func ReadManifest(r io.Reader, keys *Keyring) (*Manifest, error) {
	br := bufio.NewReader(r)
	first, err := br.Peek(1)
	if err != nil {
		return nil, fmt.Errorf("%w: empty input", ErrTruncated)
	}
	if first[0] == 0xd2 { // CBOR tag 18: COSE_Sign1
		env, err := io.ReadAll(io.LimitReader(br, MaxManifestSize+1))
		if err != nil {
			return nil, fmt.Errorf("manifest: read: %w", err)
		}
		m, _, err := Verify(env, keys)
		return m, err
	}
	p, err := OpenPackage(br, keys, Options{}) // floor 0: any sequence but 0
	if err != nil {
		return nil, err
	}
	return p.Manifest(), nil
}
