package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
)

func (f Format) String() string {
	switch f {
	case FormatNode:
		return "node"
	case FormatBSDIFF40:
		return "bsdiff40"
	case FormatBSDIFF43:
		return "bsdiff43"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses a format name as String prints it.
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatNode, FormatBSDIFF40, FormatBSDIFF43} {
		if strings.EqualFold(s, f.String()) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want node, bsdiff40 or bsdiff43)", ErrUnknownFormat, s)
}

// Transform selects the executable transform of the node format.
type Transform int

const (
	TransformAuto Transform = iota // ARM when both images are 32-bit ARM ELF files
	TransformNone
	TransformARM // ARM (A32) BL branch targets made absolute
)

// DiffOptions tune DiffWith. The zero value writes the node format with
// default frame and digest sizes and the automatic transform.
type DiffOptions struct {
	Format      Format
	Transform   Transform // node format only
	FrameSize   int64     // node format: output bytes per frame (default 256 KiB)
	DigestBlock int64     // node format: output bytes per chained digest (default 64 KiB)
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
	case FormatNode:
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnknownFormat, o.Format)
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.DigestBlock == 0 {
		o.DigestBlock = DefaultDigestBlock
	}
	arm := o.Transform == TransformARM || (o.Transform == TransformAuto && isARMELF(old) && isARMELF(new))
	oldT, newT := old, new
	if arm {
		oldT = append([]byte(nil), old...)
		newT = append([]byte(nil), new...)
		armConvert(oldT, 0, true)
		armConvert(newT, 0, true)
	}
	return writeNode(old, new, oldT, newT, bsdiffScript(oldT, newT), arm, o.FrameSize, o.DigestBlock)
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
