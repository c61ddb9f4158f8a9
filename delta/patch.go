package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
)

// Format is a patch format.
type Format int

const (
	// FormatNode is this package's format for meters: framed, streamable,
	// with source, target and chained per-block digests.
	FormatNode Format = iota + 1
	// FormatBSDIFF40 is Colin Percival's bsdiff format (Debian's bsdiff).
	FormatBSDIFF40
	// FormatBSDIFF43 is mendsley/bsdiff's ENDSLEY/BSDIFF43 format.
	FormatBSDIFF43
	// FormatNode1 is version 1 of the node format, for nodes that do not
	// advertise version 2 (see NodeFormats): one transform for the whole
	// patch, every section compressed.
	FormatNode1
	// FormatNode2 is version 2 of the node format, for nodes that do not
	// advertise version 3: FormatNode without reference correction.
	FormatNode2
)

// NodeFormats lists the node-format versions Apply reads, oldest first. A
// node advertises them in its update request so that a head-end sends only
// a delta the node can apply.
var NodeFormats = []int{nodeVersion1, nodeVersion2, nodeVersion3}

// FormatForNode returns the newest node format among the versions a node
// advertises (none advertised: version 1, the only one nodes without the
// field read), or an error when it names none this package writes.
func FormatForNode(versions []int) (Format, error) {
	if len(versions) == 0 {
		return FormatNode1, nil
	}
	best := 0
	for _, v := range versions {
		if v == nodeVersion1 || v == nodeVersion2 || v == nodeVersion3 {
			best = max(best, v)
		}
	}
	switch best {
	case nodeVersion3:
		return FormatNode, nil
	case nodeVersion2:
		return FormatNode2, nil
	case nodeVersion1:
		return FormatNode1, nil
	}
	return 0, fmt.Errorf("%w: node reads delta versions %v, none of which this head-end writes", ErrUnknownFormat, versions)
}

func (f Format) String() string {
	switch f {
	case FormatNode:
		return "node"
	case FormatBSDIFF40:
		return "bsdiff40"
	case FormatBSDIFF43:
		return "bsdiff43"
	case FormatNode1:
		return "node1"
	case FormatNode2:
		return "node2"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses a format name as String prints it.
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatNode, FormatNode1, FormatNode2, FormatBSDIFF40, FormatBSDIFF43} {
		if strings.EqualFold(s, f.String()) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want node, node2, node1, bsdiff40 or bsdiff43)", ErrUnknownFormat, s)
}

// Transform selects the executable transform of the node format.
type Transform int

const (
	// TransformAuto: in version 2, each frame is coded both without and
	// with the ARM transform (when both images hold a 32-bit ARM ELF file
	// anywhere) and the smaller is kept; in version 1, ARM for the whole
	// patch when both images are 32-bit ARM ELF files.
	TransformAuto Transform = iota
	TransformNone
	TransformARM   // ARM (A32) BL branch targets made absolute, every frame
	TransformThumb // Thumb-2 BL branch targets made absolute, every frame (version 2)
)

// DiffOptions tune DiffWith. The zero value writes the node format with
// default frame and digest sizes and the automatic transform.
type DiffOptions struct {
	Format      Format
	Transform   Transform // node format only
	FrameSize   int64     // node format: output bytes per frame (default 1 MiB)
	DigestBlock int64     // node format: output bytes per chained digest (default: the frame size)
	// InPlace lets the node format's ARM pass transform old and new in
	// place instead of copying them (2 bytes per image byte less at the
	// peak); they are restored before DiffWith returns, so they must not
	// be read concurrently. For host tools that own the images.
	InPlace bool
}

// Diff returns a patch that turns old into new, in format f.
func Diff(old, new []byte, f Format) ([]byte, error) {
	return DiffWith(old, new, DiffOptions{Format: f})
}

// DiffWith returns a patch that turns old into new. It holds both images
// and a suffix array of old (4 bytes per byte, plus as much again while
// sorting) in RAM: it is meant for the head-end, not the node.
func DiffWith(old, new []byte, o DiffOptions) ([]byte, error) {
	if o.Format == 0 {
		o.Format = FormatNode
	}
	if len(old) >= 1<<31-1 || len(new) >= 1<<31-1 {
		return nil, fmt.Errorf("%w: images must be under 2 GiB", ErrTooLarge)
	}
	switch o.Format {
	case FormatBSDIFF40:
		return writeBSDIFF40(old, new, bsdiffScript(old, new))
	case FormatBSDIFF43:
		return writeBSDIFF43(old, new, bsdiffScript(old, new))
	case FormatNode, FormatNode1, FormatNode2:
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnknownFormat, o.Format)
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.DigestBlock == 0 {
		o.DigestBlock = min(o.FrameSize, 1<<maxDigestLog)
	}
	version := byte(nodeVersion2)
	if o.Format == FormatNode1 {
		version = nodeVersion1
	}
	// Reference correction (version 3) is tried beside the plain pass
	// when both images hold ARM ELF files; the patch is version 3 only
	// if a frame keeps it.
	refs := o.Format == FormatNode && o.Transform == TransformAuto
	var xs []xform
	switch o.Transform {
	case TransformNone:
		xs = []xform{xformNone}
	case TransformARM:
		xs = []xform{xformARM}
	case TransformThumb:
		xs = []xform{xformThumb}
	case TransformAuto:
		switch {
		case version == nodeVersion1 && isARMELF(old) && isARMELF(new):
			xs = []xform{xformARM}
		case version == nodeVersion1:
			xs = []xform{xformNone}
		case hasARMELF(old) && hasARMELF(new):
			// Both ARM transforms are tried where the new image's branches
			// say that code of that kind is there: A32 BL words and Thumb-2
			// BL pairs occur about as often in data, but code of one kind
			// has tens of times more of its own.
			xs = []xform{xformNone, xformARM}
			if a32, thumb := blCounts(new); thumb > a32 {
				xs = []xform{xformNone, xformThumb}
				if 4*a32 > thumb {
					xs = append(xs, xformARM)
				}
			}
		default:
			xs = []xform{xformNone}
		}
	default:
		return nil, fmt.Errorf("delta: unknown transform %d", o.Transform)
	}
	if version == nodeVersion1 && xs[0] == xformThumb {
		return nil, fmt.Errorf("delta: node format 1 has no Thumb transform")
	}
	w, err := newNodeWriter(old, new, version, o.FrameSize, o.DigestBlock)
	if err != nil {
		return nil, err
	}
	// One transform at a time: each pass needs its images and one suffix
	// array. With InPlace the images are transformed in place and put back
	// (unless old and new are the same slice), else copied once.
	inPlace := o.InPlace && (len(old) == 0 || len(new) == 0 || &old[0] != &new[0])
	var oldT, newT []byte
	cur, copied := xformNone, false
	for i, x := range xs {
		if i > 0 {
			runtime.GC() // the last pass's suffix array is garbage: keep the peak at one
		}
		switch {
		case x == xformNone && cur == xformNone:
			oldT, newT = old, new
		case inPlace:
			cur.convert(old, 0, false)
			cur.convert(new, 0, false)
			oldT, newT = old, new
		case !copied:
			oldT, newT, copied = slices.Clone(old), slices.Clone(new), true
		default:
			cur.convert(oldT, 0, false)
			cur.convert(newT, 0, false)
		}
		x.convert(oldT, 0, true)
		x.convert(newT, 0, true)
		cur = x
		segs := scriptSegments(oldT, newT)
		if err := w.add(&domain{x: x, oldT: oldT, newT: newT, segs: segs}); err != nil {
			if inPlace {
				cur.convert(old, 0, false)
				cur.convert(new, 0, false)
			}
			return nil, err
		}
		if i == 0 && x == xformNone && refs {
			// oldT and newT are old and new as they are.
			if err := w.addRefs(old, new, segs, inPlace); err != nil {
				return nil, err
			}
			if w.refs != nil {
				// Reference correction subsumes the branch transforms:
				// no frame kept A32 beside it on tar r1→r2 nor on esbuild
				// 0.27.2→0.27.3.
				break
			}
		}
	}
	if inPlace {
		cur.convert(old, 0, false)
		cur.convert(new, 0, false)
	}
	return w.bytes()
}

// bufWriter collects Apply's blocks in memory.
type bufWriter struct{ b []byte }

func (w *bufWriter) WriteBlock(_ int64, p []byte) error {
	w.b = append(w.b, p...)
	return nil
}

// Patch applies one patch in any supported format to old and returns the
// new image. It is a whole-buffer helper for tests and host tools.
func Patch(old []byte, patch io.Reader) ([]byte, error) {
	return Chain(old, []io.Reader{patch})
}

// Chain applies a chain of patches to old and returns the last image.
func Chain(old []byte, patches []io.Reader) ([]byte, error) {
	w := &bufWriter{}
	if _, err := Apply(context.Background(), bytes.NewReader(old), int64(len(old)), patches, w, Options{BlockSize: 1 << 20, MaxPatchBuffer: 1 << 30}); err != nil {
		return nil, err
	}
	return w.b, nil
}
