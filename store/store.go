package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"meterupd/internal/atomicfile"
	"meterupd/manifest"
)

// Remote is where a package is fetched from.
type Remote interface {
	// Fetch reads the len(p) bytes of the package at off into p. It
	// returns the number of bytes that arrived, in order from off; when
	// that is less than len(p) it also returns an error, and the bytes
	// before the break are still used.
	Fetch(ctx context.Context, p []byte, off int64) (int, error)
}

// Options configure a fetch.
type Options struct {
	// Dir holds this fetch's files; it is created if missing. The same
	// Dir resumes the same fetch.
	Dir string
	// Size is the package's size as the head-end declared it: every
	// offset must lie below it.
	Size int64
	// Keys, Floor and Now check the manifest (manifest.OpenPackage's
	// rules: signature first, then expiry, then sequence).
	Keys  *manifest.Keyring
	Floor uint64
	Now   func() time.Time
	// Verify, when set, checks the signed manifest instead of Keys, Floor
	// and Now: a transport that holds no keys asks the node (which does).
	// It returns the verified manifest.
	Verify func(envelope []byte) (*manifest.Manifest, error)
	// Select names the payloads this node needs, once the manifest is
	// verified; nil means every payload. An error refuses the package
	// before any payload byte is fetched.
	Select func(m *manifest.Manifest) ([]string, error)
	// MaxBytes is the room in the store: the needed payloads and their
	// block lists must fit. 0 means no bound.
	MaxBytes int64
	// Window is how many blocks one request asks for (default 16).
	Window int
	// MaxBad is how many bad arrivals of one block are tolerated before
	// the fetch fails (default 8).
	MaxBad int
	// Progress, if set, is told the payload bytes held and needed after
	// every window.
	Progress func(done, total int64)
	// OnBytes, if set, is told every count of bytes the remote delivers
	// (package bytes on the link, for a transport's accounting).
	OnBytes func(n int)
	Logger  *slog.Logger
}

// Errors of a fetch.
var (
	ErrNoRoom   = errors.New("store: the package does not fit the store")
	ErrLayout   = errors.New("store: malformed package layout")
	ErrBadBlock = errors.New("store: a block kept arriving corrupt")
	ErrDigest   = errors.New("store: payload digest mismatch")
)

// Result is a fetched package.
type Result struct {
	Envelope []byte // the signed manifest, as received
	Manifest *manifest.Manifest
	// Payloads maps each needed payload name to its verified file.
	Payloads map[string]string
	Stats    Stats
}

// Stats count what one call of Fetch moved.
type Stats struct {
	Requests  int   // calls of Remote.Fetch
	Bytes     int64 // bytes the remote delivered
	BadBlocks int   // blocks refused on arrival
}

// entry is one tar entry of the package.
type entry struct {
	Name string `json:"name"`
	Off  int64  `json:"off"` // of its data
	Size int64  `json:"size"`
}

const (
	manifestFile = "manifest.cose"
	layoutFile   = "layout.json"
	payloadPre   = "p-"
	haveExt      = ".have"
	recordSize   = 8 // a held-block record: index, CRC-32C of it
	chunkSize    = 4096
	// maxWindowBytes bounds the buffer of one request: RAM on a meter is
	// shared with metering.
	maxWindowBytes = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type fetcher struct {
	r     Remote
	opt   Options
	log   *slog.Logger
	stats Stats
	done  int64
	total int64
}

// Fetch fetches the package from r into opt.Dir, resuming what an earlier
// call left there, and returns it verified. A refused package (signature,
// sequence, room, layout) changes nothing but opt.Dir, which the caller
// removes with Remove.
func Fetch(ctx context.Context, r Remote, opt Options) (*Result, error) {
	if opt.Window <= 0 {
		opt.Window = 16
	}
	if opt.MaxBad <= 0 {
		opt.MaxBad = 8
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Size <= 1024 {
		return nil, fmt.Errorf("%w: declared size %d", ErrLayout, opt.Size)
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f := &fetcher{r: r, opt: opt, log: opt.Logger}
	env, m, err := f.manifest(ctx)
	if err != nil {
		return nil, err
	}
	layout, err := f.layout(ctx, m, len(env))
	if err != nil {
		return nil, err
	}
	need, err := f.need(m, layout)
	if err != nil {
		return nil, err
	}
	res := &Result{Envelope: env, Manifest: m, Payloads: map[string]string{}}
	for _, it := range need {
		path, err := f.payload(ctx, it, layout)
		if err != nil {
			res.Stats = f.stats
			return nil, err
		}
		res.Payloads[it.Payload] = path
	}
	res.Stats = f.stats
	return res, nil
}

// Remove deletes a fetch's directory.
func Remove(dir string) error { return os.RemoveAll(dir) }

// fetch reads [off, off+len(p)) from the remote, within the declared size.
func (f *fetcher) fetch(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off > f.opt.Size || int64(len(p)) > f.opt.Size-off {
		return 0, fmt.Errorf("%w: bytes %d+%d lie beyond the declared size %d", ErrLayout, off, len(p), f.opt.Size)
	}
	f.stats.Requests++
	n, err := f.r.Fetch(ctx, p, off)
	if n < 0 || n > len(p) {
		return 0, fmt.Errorf("store: remote returned %d bytes for %d", n, len(p))
	}
	f.stats.Bytes += int64(n)
	if f.opt.OnBytes != nil && n > 0 {
		f.opt.OnBytes(n)
	}
	if err == nil && n < len(p) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (f *fetcher) path(name string) string { return filepath.Join(f.opt.Dir, name) }

// header fetches and parses the tar header at off.
func (f *fetcher) header(ctx context.Context, off int64) (*tar.Header, error) {
	var blk [512]byte
	if _, err := f.fetch(ctx, blk[:], off); err != nil {
		return nil, err
	}
	if blk == [512]byte{} {
		return nil, io.EOF // end of archive
	}
	hdr, err := tar.NewReader(bytes.NewReader(blk[:])).Next()
	if err != nil {
		return nil, fmt.Errorf("%w: header at %d: %v", ErrLayout, off, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size < 0 || hdr.Size > f.opt.Size {
		return nil, fmt.Errorf("%w: entry %q at %d: type %q, size %d", ErrLayout, hdr.Name, off, hdr.Typeflag, hdr.Size)
	}
	return hdr, nil
}

// manifest returns the verified manifest, fetching it the first time.
func (f *fetcher) manifest(ctx context.Context) ([]byte, *manifest.Manifest, error) {
	env, err := os.ReadFile(f.path(manifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		hdr, err := f.header(ctx, 0)
		if err == io.EOF {
			return nil, nil, fmt.Errorf("%w: empty package", ErrLayout)
		}
		if err != nil {
			return nil, nil, err
		}
		if hdr.Name != manifest.ManifestName || hdr.Size > manifest.MaxManifestSize {
			return nil, nil, fmt.Errorf("%w: first entry %q of %d bytes, want %s", ErrLayout, hdr.Name, hdr.Size, manifest.ManifestName)
		}
		env = make([]byte, hdr.Size) // bounded by MaxManifestSize
		if _, err := f.fetch(ctx, env, 512); err != nil {
			return nil, nil, err
		}
		if _, err := f.verify(env); err != nil {
			return nil, nil, err
		}
		if err := atomicfile.Write(f.path(manifestFile), 0o644, func(w io.Writer) error { _, err := w.Write(env); return err }); err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
	} else if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	// Checked again on every resume: the floor or the keys may have
	// changed while the fetch rested.
	m, err := f.verify(env)
	return env, m, err
}

func (f *fetcher) verify(env []byte) (*manifest.Manifest, error) {
	if f.opt.Verify != nil {
		return f.opt.Verify(env)
	}
	m, _, err := manifest.Verify(env, f.opt.Keys)
	if err != nil {
		return nil, err
	}
	if f.opt.Now != nil && m.Expires != 0 && f.opt.Now().Unix() >= m.Expires {
		return nil, fmt.Errorf("%w: at %d", manifest.ErrExpired, m.Expires)
	}
	if err := manifest.CheckSequence(m, f.opt.Floor); err != nil {
		return nil, err
	}
	return m, nil
}

func pad(n int64) int64 { return (n + 511) &^ 511 }

// layout walks the package's tar headers once and keeps where each entry
// lies. Entries must be the manifest's, in its order (block list before
// its payload); a tailored package may leave payloads out.
func (f *fetcher) layout(ctx context.Context, m *manifest.Manifest, envSize int) (map[string]entry, error) {
	layout := map[string]entry{}
	if b, err := os.ReadFile(f.path(layoutFile)); err == nil {
		if err := json.Unmarshal(b, &layout); err != nil {
			return nil, fmt.Errorf("store: %s: %w", layoutFile, err)
		}
		return layout, nil
	}
	want := map[string]int{} // entry name → order
	for i, it := range m.Items {
		if it.BlockSize != 0 {
			want[manifest.BlockListName(it.Payload)] = 2 * i
		}
		want[it.Payload] = 2*i + 1
	}
	last := -1
	off := 512 + pad(int64(envSize))
	for n := 0; ; n++ {
		if n > 2*len(m.Items) {
			return nil, fmt.Errorf("%w: more entries than the manifest lists", ErrLayout)
		}
		hdr, err := f.header(ctx, off)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		ord, ok := want[hdr.Name]
		if !ok || ord <= last {
			return nil, fmt.Errorf("%w: entry %q is not listed, or out of order", ErrLayout, hdr.Name)
		}
		last = ord
		layout[hdr.Name] = entry{Name: hdr.Name, Off: off + 512, Size: hdr.Size}
		off += 512 + pad(hdr.Size)
		if off > f.opt.Size {
			return nil, fmt.Errorf("%w: entry %q ends past the declared size", ErrLayout, hdr.Name)
		}
	}
	err := atomicfile.Write(f.path(layoutFile), 0o644, func(w io.Writer) error { return json.NewEncoder(w).Encode(layout) })
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return layout, nil
}

// need returns the items to fetch, checked against the layout and the room.
func (f *fetcher) need(m *manifest.Manifest, layout map[string]entry) ([]manifest.Item, error) {
	names := map[string]bool{}
	if f.opt.Select == nil {
		for _, it := range m.Items {
			names[it.Payload] = true
		}
	} else {
		sel, err := f.opt.Select(m)
		if err != nil {
			return nil, err
		}
		for _, n := range sel {
			names[n] = true
		}
	}
	var items []manifest.Item
	var room int64
	for _, it := range m.Items {
		if !names[it.Payload] {
			continue
		}
		delete(names, it.Payload)
		e, ok := layout[it.Payload]
		if !ok || uint64(e.Size) != it.Size {
			return nil, fmt.Errorf("%w: %q (needed) is not in the package, or not of its manifest size", manifest.ErrMissingPayload, it.Payload)
		}
		if it.BlockSize != 0 {
			if l, ok := layout[manifest.BlockListName(it.Payload)]; !ok || l.Size != it.BlockListSize() {
				return nil, fmt.Errorf("%w: the block list of %q", manifest.ErrMissingPayload, it.Payload)
			}
		}
		room += e.Size + it.BlockListSize()
		items = append(items, it)
	}
	for n := range names {
		return nil, fmt.Errorf("%w: selected payload %q is not in the manifest", manifest.ErrMissingPayload, n)
	}
	if f.opt.MaxBytes > 0 && room > f.opt.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes needed, %d free", ErrNoRoom, room, f.opt.MaxBytes)
	}
	for _, it := range items {
		f.total += int64(it.Size)
	}
	return items, nil
}

// payload fetches one payload (resuming) and returns its verified file.
func (f *fetcher) payload(ctx context.Context, it manifest.Item, layout map[string]entry) (string, error) {
	e := layout[it.Payload]
	path := f.path(payloadPre + it.Payload)
	var list []byte
	bs := int64(chunkSize)
	if it.BlockSize != 0 {
		var err error
		if list, err = f.blockList(ctx, it, layout[manifest.BlockListName(it.Payload)]); err != nil {
			return "", err
		}
		bs = int64(it.BlockSize)
	}
	blocks := (e.Size + bs - 1) / bs
	held, err := loadHeld(path+haveExt, blocks)
	if err != nil {
		return "", err
	}
	data, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	defer data.Close()
	have, err := os.OpenFile(path+haveExt, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	defer have.Close()
	for j := range held {
		if held[j] {
			f.done += min(bs, e.Size-int64(j)*bs)
		}
	}
	bad := map[int64]int{}
	window := int64(f.opt.Window)
	if window*bs > maxWindowBytes {
		window = max(1, maxWindowBytes/bs)
	}
	buf := make([]byte, window*bs)
	var from int64 // every block below it is held
	for {
		// The next run of missing blocks, up to a window; schema-1
		// payloads are fetched in order only (they cannot be checked
		// until whole).
		first := int64(-1)
		for j := from; j < blocks; j++ {
			if !held[j] {
				first = j
				break
			}
		}
		if first < 0 {
			break
		}
		from = first
		last := first
		for last+1 < blocks && !held[last+1] && last+1-first < window {
			last++
		}
		end := min((last+1)*bs, e.Size)
		p := buf[:end-first*bs]
		n, ferr := f.fetch(ctx, p, e.Off+first*bs)
		for j := first; j <= last; j++ {
			lo, hi := (j-first)*bs, min((j-first+1)*bs, int64(len(p)))
			if hi > int64(n) {
				break // the link broke before this block was whole
			}
			blk := p[lo:hi]
			if list != nil {
				if err := it.CheckBlock(list, j, blk); err != nil {
					f.stats.BadBlocks++
					bad[j]++
					f.log.Warn("block refused", slog.String("payload", it.Payload), slog.Int64("block", j), slog.Int("times", bad[j]))
					if bad[j] >= f.opt.MaxBad {
						return "", fmt.Errorf("%w: block %d of %s, %d times", ErrBadBlock, j, it.Payload, bad[j])
					}
					continue
				}
			}
			if err := f.keep(data, have, blk, j, bs); err != nil {
				return "", err
			}
			held[j] = true
			f.done += int64(len(blk))
		}
		if f.opt.Progress != nil {
			f.opt.Progress(f.done, f.total)
		}
		if ferr != nil {
			return "", ferr
		}
	}
	if err := data.Truncate(e.Size); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(data, 0, e.Size)); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), it.Digest) {
		// Only a schema-1 payload gets here with bad bytes: start it over.
		data.Close()
		have.Close()
		os.Remove(path)
		os.Remove(path + haveExt)
		return "", fmt.Errorf("%w: %s", ErrDigest, it.Payload)
	}
	return path, nil
}

// keep stores block j: its data synced first, then the record that it is
// held, so a power cut costs at most this one block.
func (f *fetcher) keep(data, have *os.File, blk []byte, j, bs int64) error {
	if _, err := data.WriteAt(blk, j*bs); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := data.Sync(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var rec [recordSize]byte
	binary.LittleEndian.PutUint32(rec[:4], uint32(j))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[:4], castagnoli))
	if _, err := have.Write(rec[:]); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := have.Sync(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// blockList returns the payload's verified block list, fetching it once.
func (f *fetcher) blockList(ctx context.Context, it manifest.Item, e entry) ([]byte, error) {
	path := f.path(payloadPre + manifest.BlockListName(it.Payload))
	if list, err := os.ReadFile(path); err == nil && it.CheckBlockList(list) == nil {
		return list, nil
	}
	list := make([]byte, it.BlockListSize()) // bounded by manifest.MaxBlockList
	if int64(len(list)) != e.Size {
		return nil, fmt.Errorf("%w: block list of %s", ErrLayout, it.Payload)
	}
	if _, err := f.fetch(ctx, list, e.Off); err != nil {
		return nil, err
	}
	if err := it.CheckBlockList(list); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error { _, err := w.Write(list); return err }); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return list, nil
}

// loadHeld reads a payload's record of held blocks. A torn last record (a
// power cut during its append) or one that fails its CRC ends the record:
// those blocks are fetched again.
func loadHeld(path string, blocks int64) ([]bool, error) {
	held := make([]bool, blocks) // blocks is bounded by the manifest's size and MaxBlockList
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return held, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for len(b) >= recordSize {
		j := binary.LittleEndian.Uint32(b)
		if crc32.Checksum(b[:4], castagnoli) != binary.LittleEndian.Uint32(b[4:]) || int64(j) >= blocks {
			break
		}
		held[j] = true
		b = b[recordSize:]
	}
	return held, nil
}
