// Package delta makes and applies binary deltas between firmware images:
// bsdiff-style patches, chained version by version, applied to the idle
// slot in one streaming pass with flat memory, and resumable after a power
// cut.
//
// # Formats
//
// Apply and Patch read three formats, detected from the first bytes:
//
//   - BSDIFF40, Colin Percival's format as Debian's bsdiff writes it: a
//     32-byte header (magic, compressed control length, compressed diff
//     length, new size; 8-byte sign-magnitude integers) and three bzip2
//     streams: control triples (add, copy, seek), diff bytes, extra bytes.
//     The three streams are read at once, so the patch is read through
//     io.ReaderAt, or buffered up to Options.MaxPatchBuffer.
//   - ENDSLEY/BSDIFF43, mendsley/bsdiff's format: the 16-byte magic, the new
//     size, and one bzip2 stream in which every control triple is followed
//     by its diff bytes and extra bytes. It streams.
//   - the node format (below), which Diff writes by default.
//
// Diff writes all three. Its search is Percival's: a suffix array of the
// old image (index/suffixarray's SA-IS, read back through Index.Write;
// prefix doubling as fallback), approximate matches extended forwards and
// backwards so that the diff bytes are mostly zero. It holds both images
// and about 10 bytes per old byte in RAM: the head-end runs it, not a node.
//
// # The node format
//
//	header (100 bytes, little endian):
//	  "MTRDLT01" | version 1 | flags (bit 0: ARM branch transform) |
//	  codec 2 | log2 digest block | u32 frame size | u64 old size |
//	  u64 new size | SHA-256 of old | SHA-256 of new | CRC-32 of the above
//	frame i (one per frame size of output; the last may be short):
//	  u32 diff section length | u32 rest section length |
//	  16-byte chained digest per digest block of the frame's output |
//	  diff section: bzip2 of the frame's diff bytes, zero-run coded
//	    (uvarint zeros, uvarint literals, the literals; repeated), empty
//	    if the frame has no diff bytes |
//	  rest section: LZMA2 (256 KiB dictionary) of: uvarint old position,
//	    uvarint entry count, entries (uvarint add, uvarint copy, varint
//	    seek), then the frame's extra bytes
//
// A frame's entries cover exactly its output, and every old range they
// read lies inside the old image; a frame decodes on its own. The chained
// digest of digest block k is SHA-256(digest k-1 || k as u64 || block k),
// starting from the new image's SHA-256, and the first 16 bytes are stored.
// Apply checks each block before it writes it, so a corrupt or tampered
// patch is caught at the block where it happens (*BlockMismatchError), and
// VerifyBlocks proves which blocks in flash are already right.
//
// With the ARM transform (chosen when both images are 32-bit ARM ELF
// files, as Go's GOARCH=arm executables are), both images are diffed after
// turning the relative offsets of A32 BL instructions into absolute
// targets (see arm.go), so calls into code that moved stop costing diff
// bytes; Apply reads the source and writes the output through the inverse.
// On the corpus pair below it shrinks the bzip2-compressed diff stream from
// 204495 to 160817 bytes (−21 %); the extra stream barely changes.
//
// Compression was chosen by measurement on the esbuild linux-arm corpus,
// pair 0.27.2→0.27.3 (10.6 MB, ARM transform on; sizes in bytes of the diff
// stream / the extra stream):
//
//	bzip2 -9 (dsnet/compress, pure Go)   160817 / 74162
//	zstd best (klauspost/compress)       221384 / 75427
//	xz (ulikunitz/xz, pure Go)           201720 / 43120
//	(libbz2 -9: 145309 / 67710; xz -9e: 146736 / 41224 — C tools)
//
// bzip2's block sorting suits the mostly-zero diff stream; LZ77 suits the
// extra bytes (new code and strings). Hence codec 2: bzip2 for diff bytes,
// LZMA2 for control and extra. Frame size trades size against random
// access for inner chain hops; on the same pair, without zero-run coding:
// 64 KiB frames 284758 bytes, 256 KiB 249539, 512 KiB 230958, 1 MiB
// 217580. Coding the zero runs of the diff bytes before bzip2 shrinks its
// input about 12 times (10.5 MB to 0.8 MB), so decoding is that much
// faster, for a size change within ±1 % (512 KiB 229233, 1 MiB 219043, the
// default, with a 256 KiB LZMA2 dictionary). Debian's bsdiff makes 259904
// bytes for that pair: 0.84×. docs/delta.md has the benchmark over the corpus.
//
// # Applying on a node
//
// Apply(ctx, src, size, patches, dst, opts) is what the agent calls:
//
//   - src is the active slot, an io.ReaderAt of size bytes: only read.
//   - patches is the chain v1→v2→…→vN, each an io.Reader read once, in
//     order, from its first byte. Inner hops (all but the last) must be in
//     the node format; their output is never stored: a later hop reads its
//     source through them. An inner hop keeps its last two decoded frames
//     (control entries and diff and extra bytes, not output) and produces
//     only the bytes asked for, reading its own source the same way. An
//     inner hop is read through io.ReaderAt when the reader has it (an
//     *os.File on the package store), else buffered in RAM (capped).
//   - dst is a BlockWriter: WriteBlock(index, p) in increasing order, each
//     block once, BlockSize bytes (the erase block; the last may be short).
//   - Options.MaxSize is the slot size: a larger declared output fails
//     with ErrTooLarge before the first write, and no output is ever
//     produced past the declared size.
//   - Options.Checkpoint gets, after each block, a checkpoint of about 180
//     bytes (versioned, CRC-checked) for the journal. Options.Resume takes
//     the last one persisted: Apply re-reads the patches from their start,
//     skips the frames wholly before the restart point without decoding
//     them, regenerates the frame in progress without writing it, and
//     writes from the block after the checkpoint. A cut while writing block
//     k costs rewriting block k only.
//
// Checks: before writing, the first node hop's source size and SHA-256
// (ErrSourceMismatch; hashed in a goroutine beside the decoding of the
// first frames, and awaited before the first write or error) and each next
// hop's declared source against the hop before; while writing, every digest
// block; at the end, the output's SHA-256 (ErrTargetMismatch). Bsdiff formats carry no digests: the caller
// checks the result against its manifest, as it should anyway.
//
// Memory on the node is flat in the image size and in the patch size (when
// patches are files): the last hop holds one frame of output and one
// decoded frame (2 × 1 MiB), each inner hop two decoded frames, and each
// frame decode allocates a bzip2 block (400 kB per 100 kB of zero-run
// coded diff) and a 256 KiB LZMA2 dictionary that are garbage right after.
// Run the agent with a soft memory limit (GOMEMLIMIT) so that the collector
// reclaims them early; meterpkg patch and chain set 12 MiB.
//
// # Untrusted input
//
// Every header field, length, offset and seek is range-checked before use
// (the bspatch CVE-2014-9862 and CVE-2020-14315 classes): negative or
// oversized control values, reads past the old image (node format; bsdiff
// formats read zeros there, as bspatch does), writes past the declared
// size or the cap. No allocation is sized by a patch beyond fixed caps
// (frame size ≤ 4 MiB, compressed sections bounded by the frame size), and
// decompressors are only read for the bytes the frame needs, so a
// decompression bomb produces nothing. Malformed input gives a
// *CorruptError naming the patch (Hop) and the byte offset of the field or
// compressed section, never a panic.
package delta
