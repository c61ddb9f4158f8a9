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
// old image (index/suffixarray's SA-IS; its array taken from the index,
// read back through Index.Write or built by prefix doubling as
// fallbacks), approximate matches extended forwards and backwards so that
// the diff bytes are mostly zero. Two departures from bsdiff keep the
// search linear on images made of long runs (ext4, tar): the binary search
// orders a suffix that is a prefix of the searched text as less (bsdiff
// counts it as not less, and so matches every run of zeros with the few
// zeros at the end of old), and the scan stops searching at every byte of
// a long match that does not decide (search.go, diff.go). The binary
// search starts in the range of the text's first two bytes and remembers
// how many bytes its two ends share with the text; the new image is cut
// into one part per CPU, searched in parallel in the one array. It holds
// both images and about 4 bytes per old byte: the head-end runs it, not a
// node.
//
// # The node format
//
//	header (100 bytes, little endian):
//	  "MTRDLT01" | version (1, 2 or 3) | flags | codec 2 | log2 digest block |
//	  u32 frame size | u64 old size | u64 new size | SHA-256 of old |
//	  SHA-256 of new | CRC-32 of the above
//	frame i (one per frame size of output; the last may be short):
//	  u32 diff section length | u32 rest section length |
//	  16-byte chained digest per digest block of the frame's output |
//	  diff section: the frame's diff bytes, zero-run coded (uvarint zeros,
//	    uvarint literals, the literals; repeated), bzip2-compressed;
//	    empty if the frame has no diff bytes |
//	  rest section: uvarint old position, uvarint entry count, entries
//	    (uvarint add, uvarint copy, varint seek), then the frame's extra
//	    bytes, LZMA2-compressed (256 KiB dictionary)
//
// Version 2 (what Diff writes where version 3 does not pay) decides per
// frame, in the top bits of the two lengths: bit 31 of the diff length,
// the frame is coded through the
// ARM (A32) transform; bit 30 of the rest length, through the Thumb-2
// transform (not both); bit 30 of the diff length, the diff section is
// stored zero-run coded without bzip2; bit 29 of the diff length, it is
// LZMA2-compressed instead of bzip2 (bzip2 wins on most frames, LZMA2 on
// some: keeping the smaller saves 7 % of the diff bytes on the system
// images); bit 31 of the rest length, the rest section is stored without
// LZMA2. Header flags are 0. Version 1 (what
// nodes that do not advertise version 2 get: FormatNode1) has header flag
// bit 0 for the ARM transform of the whole patch and every section
// compressed. Apply reads both; a node built before version 2 refuses a
// version-2 patch with a *CorruptError before writing anything.
//
// Version 3 is version 2 with reference correction (refs.go): header
// flags are 2 (a reference table follows), then a u32 length and the
// table, LZMA2-compressed (at most 1 MiB, compressed and decompressed; at most 1024 maps, 65536 spans
// and 8192 regions, at most 1.1 MiB once decoded; 23 KB compressed on the
// tar r1→r2 pair); bit 29 of a frame's rest length says the frame is
// coded through it (its source read with references projected; the
// output needs no inverse). Diff (FormatNode) writes version 3 only when
// the frames that choose reference correction save more than the table
// costs, else version 2; FormatNode2 never writes it, for nodes that do
// not advertise version 3. A node built before version 3 refuses a
// version-3 patch with a *CorruptError ("unsupported version 3") before
// writing anything.
//
// A frame's entries cover exactly its output, and every old range they
// read lies inside the old image; a frame decodes on its own. The chained
// digest of digest block k is SHA-256(digest k-1 || k as u64 || block k),
// starting from the new image's SHA-256, and the first 16 bytes are stored.
// Diff makes the digest block the frame (1 MiB) by default: Apply decodes
// a whole frame into RAM and checks it before it writes any of its blocks,
// so a corrupt or tampered patch is still caught before the first bad
// block is written (*BlockMismatchError names the frame's first digest
// block), at 16 bytes per MiB instead of 256. A version-only release (two
// bytes of a 10 MiB executable) costs 528 bytes where bsdiff needs 165:
// the 100-byte header and, per frame, 8 bytes of lengths, 16 of digest and
// the two sections, stored raw when that is smaller.
//
// # Executable transforms and reference correction
//
// An A32 BL instruction (top byte 0xEB) holds its target relative to its
// own address; a Thumb-2 BL pair does too. When code moves between
// releases, every call across the moved region changes; turning the
// offsets into absolute targets (arm.go) keeps a call unchanged when its
// target stayed and the caller moved, but changes it when both moved
// together, where the relative form was unchanged. Which of the two holds
// depends on the region, so version 2 encodes each frame in every domain
// (plain; ARM; Thumb-2 where the new image has more Thumb-2 BL pairs than
// A32 BL words), each with its own bsdiff script, and keeps the smallest.
// Shifted code, data and non-ARM content are then never penalised: on an
// esbuild executable shifted by 64 KiB, and on the 8x image of random data
// behind an executable, the frames are coded plain. Each pass needs its
// own suffix array (one at a time); meterpkg lets Diff transform the
// images in place (DiffOptions.InPlace) instead of copying them.
//
// Both transforms are position-local (a word or halfword pair is converted
// or not from its own bytes; no conversion crosses a 4 KiB boundary), so a
// frame, or any range a later chain hop reads, converts on its own.
//
// Reference correction (version 3, refs.go, in the manner of Chromium's
// Zucchini) goes further: the encoder finds the 32-bit ARM ELF files in
// both images (section headers; a tar or ext4 image holds whole files),
// pairs each old file with the new file most of its matched bytes went
// to, and turns the plain bsdiff script's matches of 64 bytes or more
// into an equivalence map of addresses (old address range → new address
// range, per file; sections only in memory, .bss, by name). The patch
// carries the maps and the regions of the old image that hold references
// (A32 code: B/BL and literal-pool words; Thumb-2 code: BL, BLX and B.W
// pairs and literal-pool words; AArch64 code: B, BL, ADRP; data: words in
// the file's address range, 32 or 64 bits — pointers, relocation
// offsets, symbol values), in 4 KiB chunks,
// leaving out chunks where projecting makes fewer old words equal to
// their matched new words (integer tables that look like addresses). The
// decoder projects each reference of the old image through the map: a
// B/BL gets the offset from its new site to its target's new address, a
// pointer its target's new address, so a reference that only moved reads
// as in the new image, whether caller, callee or both moved. Addresses
// the map does not hold stay as they are. Where it applies, it subsumes
// the branch transforms (no frame chose A32 beside it on tar r1→r2 and
// esbuild 0.27.2→0.27.3),
// so Diff makes two passes (plain, projected), as before.
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
// access for inner chain hops; on the r1→r2 system image (tar, version 2
// before LZMA2 diff sections):
// 256 KiB frames 1504245 bytes, 512 KiB 1465356, 1 MiB 1447725 (the
// default), 2 MiB 1452519, 4 MiB 1474376 — smaller frames lose compression
// context, larger ones the finer choice of transform. Coding the zero runs
// of the diff bytes before bzip2 shrinks its input about 12 times, so
// decoding is that much faster, for a size change within ±1 %.
// docs/delta.md has the benchmark over both corpora.
//
// # Applying on a node
//
// Apply(ctx, src, size, patches, dst, opts) is what the agent calls:
//
//   - src is the active slot, an io.ReaderAt of size bytes: only read.
//   - patches is the chain v1→v2→…→vN, each an io.Reader read once, in
//     order, from its first byte. Inner hops (all but the last) must be in
//     the node format; their output is never stored: a later hop reads its
//     source through them. An inner hop keeps decoded frames (control
//     entries, extra bytes and the diff bytes still zero-run coded, with a
//     mark every 32 runs for random access; about a tenth of the frame) in
//     a least-recently-used cache of 2 MiB, so that a later hop reading
//     its source out of order does not decode a frame again: on the
//     executable corpus every inner frame is decoded once (11 decodes for
//     11 frames, where two plain frames per hop made 283). It produces
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
// block; at the end, the output's SHA-256 (ErrTargetMismatch). Bsdiff
// formats carry no digests: the caller checks the result against its
// manifest, as it should anyway.
//
// Memory on the node is flat in the image size and in the patch size (when
// patches are files): the last hop holds one frame of output and one
// decoded frame (up to 2 × 1 MiB), each inner hop at most 2 MiB of
// decoded frames (at least two), sources are read in 64 KiB pieces, and
// each frame decode allocates a bzip2 block (400 kB per 100 kB of zero-run
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
