package delta

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownFormat means the patch starts with no magic this package knows.
	ErrUnknownFormat = errors.New("delta: unknown patch format")
	// ErrSourceMismatch means the source image is not the one the patch
	// (or the next hop of a chain) was made from.
	ErrSourceMismatch = errors.New("delta: source image does not match the patch")
	// ErrTargetMismatch means the produced image (a block or the whole image)
	// does not have the digest the patch declares.
	ErrTargetMismatch = errors.New("delta: produced image does not match the patch digest")
	// ErrTooLarge means the patch declares (or would produce) more output
	// than the caller's cap. Nothing past the cap is ever written.
	ErrTooLarge = errors.New("delta: output larger than allowed")
	// ErrChainUnsupported means a chain hop that is read through by a later
	// hop is not in the node format (only the node format gives random
	// access to its output without holding the image).
	ErrChainUnsupported = errors.New("delta: only node-format patches can be inner hops of a chain")
	// ErrCheckpoint means a checkpoint is malformed, of an unknown version,
	// or was taken for another chain or block size.
	ErrCheckpoint = errors.New("delta: checkpoint does not match this apply")
)

// CorruptError reports a malformed patch. Offset is the byte offset in the
// patch of the bad header field, or of the start of the compressed stream or
// frame that holds the bad value; Hop is the chain index of the patch (0 for
// a single patch).
type CorruptError struct {
	Hop    int
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Hop > 0 {
		return fmt.Sprintf("delta: corrupt patch %d at offset %d: %s", e.Hop, e.Offset, e.Reason)
	}
	return fmt.Sprintf("delta: corrupt patch at offset %d: %s", e.Offset, e.Reason)
}

// BlockMismatchError reports the first digest block of the output whose
// chained digest differs from the one in the patch. It wraps
// ErrTargetMismatch. Nothing of that block has been written.
type BlockMismatchError struct {
	Block  int64 // index of the digest block
	Offset int64 // its offset in the output image
}

func (e *BlockMismatchError) Error() string {
	return fmt.Sprintf("delta: output block %d (offset %d) does not match the patch digest", e.Block, e.Offset)
}

func (e *BlockMismatchError) Unwrap() error { return ErrTargetMismatch }

func corrupt(off int64, format string, args ...any) error {
	return &CorruptError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}
