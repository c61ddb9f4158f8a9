package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/bits"
	"sort"

	"github.com/fxamacker/cbor/v2"

	"meterupd/boards/hw"
)

// Sentinel errors. Open, Format, Commit and Decode wrap them; test with
// errors.Is.
var (
	// ErrEmpty: the partition is erased: never formatted (Format), or
	// erased since. The journal alone cannot tell which; the caller can
	// (the agent looks at the factory set).
	ErrEmpty = errors.New("journal: the partition is erased (no record)")
	// ErrForeign: the partition holds data that is not a journal.
	ErrForeign = errors.New("journal: foreign data, not a journal")
	// ErrNewerVersion: a record was written by a newer format version.
	ErrNewerVersion = errors.New("journal: written by a newer version")
	// ErrCorrupt: journal records are present but none is valid.
	ErrCorrupt = errors.New("journal: corrupt, no valid record")
	// ErrGeometry: the flash cannot hold a journal (size, erase or write
	// unit, or a record cap that does not fit an area).
	ErrGeometry = errors.New("journal: unusable flash geometry")
	// ErrTooLarge: a record is larger than Options.MaxRecord.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrDecode: a record's CBOR does not decode within the limits.
	ErrDecode = errors.New("journal: cannot decode record")
	// ErrNoArea: a commit found no area where the record could be written
	// and verified (bad blocks, persistent I/O errors).
	ErrNoArea = errors.New("journal: no writable area")
)

// Format constants. The first 32 bytes of a record (the header) keep this
// layout in every version, so that an older agent recognises a newer
// record and refuses it (ErrNewerVersion) instead of misreading it.
const (
	// Version is the record format this code writes and reads.
	Version = 1
	// HeaderSize is the fixed size of a record header.
	HeaderSize = 32
	// DefaultMaxRecord is the default cap on a record's CBOR payload.
	DefaultMaxRecord = 4 << 10
	// MaxRecordLimit is the hard cap on Options.MaxRecord: no allocation
	// while reading the journal is larger.
	MaxRecordLimit = 64 << 10
	// MinArea is the smallest area: erase blocks smaller than this are
	// grouped. The grouping depends on the flash geometry only, so every
	// version of the agent finds the same areas.
	MinArea = 16 << 10
)

var magic = [4]byte{'M', 'U', 'J', 'R'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoder limits: the state is small (< 2 KiB), these bound any hostile record.
const (
	maxNested     = 16
	maxArrayElems = 1024
	maxMapPairs   = 1024
)

var (
	decMode cbor.DecMode
	encMode cbor.EncMode
)

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  maxNested,
		MaxArrayElements: maxArrayElems,
		MaxMapPairs:      maxMapPairs,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // constant options: a bug, not input
	}
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
}

// Decode decodes a raw record payload (Record.Data) into v with the journal's
// decoder limits: nesting, array and map sizes bounded, duplicate map keys,
// indefinite lengths, tags and trailing bytes rejected, and at most
// MaxRecordLimit bytes.
func Decode(data []byte, v any) error {
	if len(data) > MaxRecordLimit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxRecordLimit)
	}
	if err := decMode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

// Options tune a Journal. The zero value is usable.
type Options struct {
	// Logger receives area switches and recoveries; nil discards.
	Logger *slog.Logger
	// MaxRecord caps a record's CBOR payload in bytes; 0 means
	// DefaultMaxRecord, reduced to fit an area on a small partition.
	MaxRecord int
}

// Record is one valid record found on flash.
type Record struct {
	Seq    uint64
	Area   int
	Offset int64  // within the partition
	Data   []byte // raw CBOR payload
}

// Stats counts the journal's flash operations since Open or Format.
type Stats struct {
	Erases   int64 // erase blocks erased
	Programs int64 // records programmed (WriteAt calls)
	Commits  int64 // successful commits
	// TornRecords counts areas whose log ended in a torn or invalid record
	// when the journal was opened.
	TornRecords int
}

// Journal is an open journal partition. It is not safe for concurrent use.
type Journal struct {
	f         hw.Flash
	log       *slog.Logger
	g         geometry
	maxRecord int

	seq     uint64 // newest record's sequence number
	nextSeq uint64 // next sequence number to use (never reused)
	data    []byte // newest record's payload
	cur     int    // area holding the newest record
	end     int64  // append offset within cur (relative to the area)
	dirty   bool   // cur must not be appended to (torn tail, unerased)
	stats   Stats
}

// geometry is the area layout of a partition.
type geometry struct {
	areas     int
	areaSize  int64
	blocks    int64 // erase blocks per area
	eraseSize int64
	writeSize int64
}

func (g geometry) areaOff(a int) int64 { return int64(a) * g.areaSize }

// pad rounds n up to the write unit.
func (g geometry) pad(n int64) int64 { return (n + g.writeSize - 1) / g.writeSize * g.writeSize }

func layout(f hw.Flash) (geometry, error) {
	size, es, ws := f.Size(), f.EraseSize(), f.WriteSize()
	if es <= 0 || ws <= 0 || size <= 0 || size%es != 0 || es%ws != 0 {
		return geometry{}, fmt.Errorf("%w: size %d, erase size %d, write size %d", ErrGeometry, size, es, ws)
	}
	nblocks := size / es
	if nblocks < 2 {
		return geometry{}, fmt.Errorf("%w: %d erase block(s), need at least 2", ErrGeometry, nblocks)
	}
	k := (MinArea + es - 1) / es
	if nblocks/k < 2 {
		k = nblocks / 2
	}
	g := geometry{areas: int(nblocks / k), areaSize: k * es, blocks: k, eraseSize: es, writeSize: ws}
	if g.pad(HeaderSize+1) > g.areaSize {
		return geometry{}, fmt.Errorf("%w: area of %d bytes holds no record", ErrGeometry, g.areaSize)
	}
	return g, nil
}

func maxRecordFor(g geometry, opt Options) (int, error) {
	// Largest payload whose padded record fits an area.
	fit := (g.areaSize/g.writeSize*g.writeSize - HeaderSize)
	if opt.MaxRecord == 0 {
		return int(min(DefaultMaxRecord, fit)), nil
	}
	if opt.MaxRecord < 0 || opt.MaxRecord > MaxRecordLimit || int64(opt.MaxRecord) > fit {
		return 0, fmt.Errorf("%w: MaxRecord %d, area of %d bytes fits %d, limit %d", ErrGeometry, opt.MaxRecord, g.areaSize, fit, MaxRecordLimit)
	}
	return opt.MaxRecord, nil
}

func newJournal(f hw.Flash, opt Options) (*Journal, error) {
	g, err := layout(f)
	if err != nil {
		return nil, err
	}
	mr, err := maxRecordFor(g, opt)
	if err != nil {
		return nil, err
	}
	lg := opt.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Journal{f: f, log: lg, g: g, maxRecord: mr}, nil
}

// header is a decoded record header.
type header struct {
	version uint16
	seq     uint64
	dataLen uint32
	recLen  uint32
	dataCRC uint32
}

// Header layout (little endian):
//
//	0  magic "MUJR"
//	4  version    u16
//	6  header size u16 (32)
//	8  seq        u64
//	16 data len   u32  (CBOR payload bytes)
//	20 record len u32  (header + payload + zero padding to the write unit)
//	24 data CRC   u32  CRC-32C over payload and padding
//	28 header CRC u32  CRC-32C over bytes 0..28
func encodeRecord(g geometry, seq uint64, data []byte) []byte {
	n := g.pad(HeaderSize + int64(len(data)))
	rec := make([]byte, n)
	copy(rec[HeaderSize:], data)
	copy(rec[0:4], magic[:])
	binary.LittleEndian.PutUint16(rec[4:], Version)
	binary.LittleEndian.PutUint16(rec[6:], HeaderSize)
	binary.LittleEndian.PutUint64(rec[8:], seq)
	binary.LittleEndian.PutUint32(rec[16:], uint32(len(data)))
	binary.LittleEndian.PutUint32(rec[20:], uint32(n))
	binary.LittleEndian.PutUint32(rec[24:], crc32.Checksum(rec[HeaderSize:], castagnoli))
	binary.LittleEndian.PutUint32(rec[28:], crc32.Checksum(rec[:28], castagnoli))
	return rec
}

// headerKind classifies the bytes at a record position.
type headerKind int

const (
	hdrErased  headerKind = iota // all 0xFF: end of the log
	hdrForeign                   // not our magic
	hdrTorn                      // our magic, but the header CRC or fields are bad
	hdrNewer                     // valid header of a newer version
	hdrValid                     // valid header of this version
)

func parseHeader(b []byte) (header, headerKind) {
	if isErased(b) {
		return header{}, hdrErased
	}
	if !bytes.Equal(b[0:4], magic[:]) {
		if nearMagic(b[0:4]) {
			return header{}, hdrTorn
		}
		return header{}, hdrForeign
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return header{}, hdrTorn
	}
	h := header{
		version: binary.LittleEndian.Uint16(b[4:]),
		seq:     binary.LittleEndian.Uint64(b[8:]),
		dataLen: binary.LittleEndian.Uint32(b[16:]),
		recLen:  binary.LittleEndian.Uint32(b[20:]),
		dataCRC: binary.LittleEndian.Uint32(b[24:]),
	}
	if h.version > Version {
		return h, hdrNewer
	}
	if h.version == 0 || binary.LittleEndian.Uint16(b[6:]) != HeaderSize {
		return h, hdrTorn
	}
	return h, hdrValid
}

// nearMagic reports whether m is our magic damaged the ways flash damages
// it: a torn program (some bits still erased, so m has every bit of the
// magic set) or a few flipped bits. Such a header is a torn record of ours,
// not foreign data.
func nearMagic(m []byte) bool {
	torn, flipped := true, 0
	for i := range magic {
		torn = torn && m[i]&magic[i] == magic[i]
		flipped += bits.OnesCount8(m[i] ^ magic[i])
	}
	return (torn && !isErased(m)) || flipped <= 2
}

func isErased(b []byte) bool {
	for _, c := range b {
		if c != 0xFF {
			return false
		}
	}
	return true
}

// areaScan is what a scan of one area found.
type areaScan struct {
	records  []Record
	end      int64 // offset after the last valid record, relative to the area
	ourMagic bool  // a header with our magic was seen
	torn     bool  // the log ended in something other than erased flash
	newer    bool
	maxSeq   uint64 // highest sequence number in a header that passed its CRC
	tooLarge *Record
}

// scanArea reads area a's records in order until the log ends.
func (j *Journal) scanArea(a int) (areaScan, error) {
	var s areaScan
	base := j.g.areaOff(a)
	hb := make([]byte, HeaderSize)
	off := int64(0)
	for {
		if off+HeaderSize > j.g.areaSize {
			if off < j.g.areaSize {
				// A tail shorter than a header: it must be erased.
				tail := make([]byte, j.g.areaSize-off)
				if err := j.read(tail, base+off); err != nil {
					return s, err
				}
				s.torn = !isErased(tail)
			}
			break
		}
		if err := j.read(hb, base+off); err != nil {
			return s, err
		}
		h, kind := parseHeader(hb)
		if kind != hdrErased && kind != hdrForeign {
			s.ourMagic = true
		}
		if kind == hdrNewer {
			s.newer = true
			break
		}
		if kind != hdrValid {
			s.torn = kind != hdrErased
			break
		}
		// A header that passed its CRC carries a sequence number that was
		// used, even if the rest of its record is bad: never reuse it.
		s.maxSeq = max(s.maxSeq, h.seq)
		if int64(h.recLen) != j.g.pad(HeaderSize+int64(h.dataLen)) || off+int64(h.recLen) > j.g.areaSize {
			s.torn = true
			break
		}
		if int(h.dataLen) > j.maxRecord {
			// Valid, but larger than this journal reads: check its CRC
			// without holding it, so Open can tell whether it is the newest.
			ok, err := j.crcRange(base+off+HeaderSize, int64(h.recLen)-HeaderSize, h.dataCRC)
			if err != nil {
				return s, err
			}
			if !ok {
				s.torn = true
				break
			}
			if s.tooLarge == nil || h.seq > s.tooLarge.Seq {
				s.tooLarge = &Record{Seq: h.seq, Area: a, Offset: base + off}
			}
			off += int64(h.recLen)
			continue
		}
		body := make([]byte, int64(h.recLen)-HeaderSize)
		if err := j.read(body, base+off+HeaderSize); err != nil {
			return s, err
		}
		if crc32.Checksum(body, castagnoli) != h.dataCRC {
			s.torn = true
			break
		}
		s.records = append(s.records, Record{Seq: h.seq, Area: a, Offset: base + off, Data: body[:h.dataLen:h.dataLen]})
		off += int64(h.recLen)
	}
	s.end = off
	if !s.torn && off < j.g.areaSize {
		// The log ended at an erased header; the rest of the area must be
		// erased too, or appending there would program over garbage.
		ok, err := j.erasedRange(base+off, j.g.areaSize-off)
		if err != nil {
			return s, err
		}
		s.torn = !ok
	}
	return s, nil
}

func (j *Journal) read(p []byte, off int64) error {
	n, err := j.f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("journal: read %d bytes at %d: %w", len(p), off, err)
}

// crcRange reports whether the CRC-32C of n bytes at off is want.
func (j *Journal) crcRange(off, n int64, want uint32) (bool, error) {
	buf := make([]byte, min(n, 4096))
	var sum uint32
	for n > 0 {
		c := min(n, int64(len(buf)))
		if err := j.read(buf[:c], off); err != nil {
			return false, err
		}
		sum = crc32.Update(sum, castagnoli, buf[:c])
		off += c
		n -= c
	}
	return sum == want, nil
}

// erasedRange reports whether n bytes at off are all 0xFF.
func (j *Journal) erasedRange(off, n int64) (bool, error) {
	buf := make([]byte, min(n, 4096))
	for n > 0 {
		c := min(n, int64(len(buf)))
		if err := j.read(buf[:c], off); err != nil {
			return false, err
		}
		if !isErased(buf[:c]) {
			return false, nil
		}
		off += c
		n -= c
	}
	return true, nil
}

// scan reads every area.
func (j *Journal) scan() ([]areaScan, error) {
	scans := make([]areaScan, j.g.areas)
	for a := range scans {
		s, err := j.scanArea(a)
		if err != nil {
			return nil, err
		}
		scans[a] = s
	}
	return scans, nil
}

// Open loads the journal on f. It never writes: a partition that is empty
// (ErrEmpty), foreign (ErrForeign), of a newer version (ErrNewerVersion),
// corrupt (ErrCorrupt) or holds a record larger than MaxRecord (ErrTooLarge)
// is reported and left as it is. ErrGeometry reports a partition that cannot
// hold a journal. Read errors are returned wrapped.
func Open(f hw.Flash, opt Options) (*Journal, error) {
	j, err := newJournal(f, opt)
	if err != nil {
		return nil, err
	}
	scans, err := j.scan()
	if err != nil {
		return nil, err
	}
	var newest, tooLarge *Record
	anyMagic := false
	for a := range scans {
		s := &scans[a]
		if s.newer {
			return nil, fmt.Errorf("%w: area %d (this code reads version %d)", ErrNewerVersion, a, Version)
		}
		if s.tooLarge != nil && (tooLarge == nil || s.tooLarge.Seq > tooLarge.Seq) {
			tooLarge = s.tooLarge
		}
		anyMagic = anyMagic || s.ourMagic
		if s.torn {
			j.stats.TornRecords++
		}
		for i := range s.records {
			r := &s.records[i]
			if newest == nil || r.Seq > newest.Seq {
				newest = r
			}
		}
	}
	if tooLarge != nil && (newest == nil || tooLarge.Seq > newest.Seq) {
		// The newest record is one this journal cannot read: refuse rather
		// than fall back to an older state.
		return nil, fmt.Errorf("%w: newest record %d at offset %d exceeds MaxRecord %d", ErrTooLarge, tooLarge.Seq, tooLarge.Offset, j.maxRecord)
	}
	if newest == nil {
		if anyMagic {
			return nil, ErrCorrupt
		}
		erased, err := j.erasedRange(0, j.g.areaOff(j.g.areas))
		if err != nil {
			return nil, err
		}
		if erased {
			return nil, ErrEmpty
		}
		return nil, ErrForeign
	}
	j.seq, j.nextSeq, j.data = newest.Seq, newest.Seq+1, newest.Data
	j.cur = newest.Area
	s := scans[j.cur]
	last := s.records[len(s.records)-1]
	j.end = s.end
	// Append only right after the newest record, on a clean tail.
	j.dirty = s.torn || last.Seq != newest.Seq
	for _, s := range scans {
		j.nextSeq = max(j.nextSeq, s.maxSeq+1)
	}
	if j.stats.TornRecords > 0 {
		j.log.Info("journal: torn records found", slog.Int("areas", j.stats.TornRecords), slog.Uint64("seq", j.seq))
	}
	return j, nil
}

// Format erases the whole partition and commits v as record 1. It is used
// only when provisioning a node: it destroys any journal on f.
func Format(f hw.Flash, v any, opt Options) (*Journal, error) {
	j, err := newJournal(f, opt)
	if err != nil {
		return nil, err
	}
	data, err := j.encode(v)
	if err != nil {
		return nil, err
	}
	for b := int64(0); b < f.Size()/j.g.eraseSize; b++ {
		// Best effort for bad blocks: the commit below finds a good area.
		if err := f.Erase(b*j.g.eraseSize, j.g.eraseSize); err != nil {
			j.log.Warn("journal: format erase failed", slog.Int64("offset", b*j.g.eraseSize), slog.Any("err", err))
		} else {
			j.stats.Erases++
		}
	}
	// Records that survived a failed erase must not outrank the new one.
	j.nextSeq = 1
	scans, err := j.scan()
	if err != nil {
		return nil, err
	}
	for _, s := range scans {
		j.nextSeq = max(j.nextSeq, s.maxSeq+1)
	}
	var errs []error
	for a := 0; a < j.g.areas; a++ {
		if err := j.tryWrite(a, 0, data); err != nil {
			errs = append(errs, err)
			continue
		}
		return j, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrNoArea, errors.Join(errs...))
}

func (j *Journal) encode(v any) ([]byte, error) {
	data, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("journal: encode record: %w", err)
	}
	if len(data) > j.maxRecord {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), j.maxRecord)
	}
	return data, nil
}

// Load decodes the newest record into v (see Decode for the limits).
func (j *Journal) Load(v any) error { return Decode(j.data, v) }

// Seq returns the sequence number of the newest record.
func (j *Journal) Seq() uint64 { return j.seq }

// Stats returns the operation counts since Open or Format.
func (j *Journal) Stats() Stats { return j.stats }

// Commit appends v as the next record. It is atomic: after a power cut at
// any point, Open finds either the previous record or this one as the
// newest. On error the journal still holds the previous record (Load, Seq)
// and the next Commit works from it. On flash the previous record stays the
// newest, except that a record whose program was interrupted or failed its
// read-back may still be found by the next Open, exactly as after a power cut
// at the end of a commit: the caller treats an error like a cut (state
// written before the side effect, resumed idempotently).
func (j *Journal) Commit(v any) error {
	data, err := j.encode(v)
	if err != nil {
		return err
	}
	return j.commit(data)
}

// commit writes data as a new record: appended in the current area when it
// fits on a clean tail, else in the next areas in turn (each erased first),
// never erasing the area that holds the newest record.
func (j *Journal) commit(data []byte) error {
	n := j.g.pad(HeaderSize + int64(len(data)))
	// Failures on the way are returned if nothing works, else logged once
	// the record is safe (log or return, never both).
	var errs []error
	if !j.dirty && j.end+n <= j.g.areaSize {
		err := j.tryWrite(j.cur, j.end, data)
		if err == nil {
			return nil
		}
		j.dirty = true
		errs = append(errs, fmt.Errorf("append in area %d: %w", j.cur, err))
	}
	for i := 1; i < j.g.areas; i++ {
		a := (j.cur + i) % j.g.areas
		err := j.eraseArea(a)
		if err == nil {
			err = j.tryWrite(a, 0, data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("area %d: %w", a, err))
			continue
		}
		if len(errs) > 0 {
			j.log.Warn("journal: record relocated", slog.Int("area", a), slog.Uint64("seq", j.seq), slog.Any("err", errors.Join(errs...)))
		}
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNoArea, errors.Join(errs...))
}

// eraseArea erases area a block by block and checks that it reads erased.
func (j *Journal) eraseArea(a int) error {
	base := j.g.areaOff(a)
	for b := int64(0); b < j.g.blocks; b++ {
		off := base + b*j.g.eraseSize
		if err := j.f.Erase(off, j.g.eraseSize); err != nil {
			return fmt.Errorf("journal: erase at %d: %w", off, err)
		}
		j.stats.Erases++
	}
	ok, err := j.erasedRange(base, j.g.areaSize)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("journal: area %d not erased after erase", a)
	}
	return nil
}

// tryWrite programs a record at offset off of area a and verifies it. On
// success it becomes the newest record.
func (j *Journal) tryWrite(a int, off int64, data []byte) error {
	seq := j.nextSeq
	j.nextSeq++ // a sequence number is never reused, even after a failure
	rec := encodeRecord(j.g, seq, data)
	at := j.g.areaOff(a) + off
	ok, err := j.erasedRange(at, int64(len(rec)))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("journal: record range at %d not erased", at)
	}
	j.stats.Programs++
	if _, err := j.f.WriteAt(rec, at); err != nil {
		return fmt.Errorf("journal: program record %d at %d: %w", seq, at, err)
	}
	got := make([]byte, len(rec))
	if err := j.read(got, at); err != nil {
		return err
	}
	if !bytes.Equal(got, rec) {
		return fmt.Errorf("journal: record %d at %d: read back differs", seq, at)
	}
	j.seq, j.data, j.cur, j.end, j.dirty = seq, data, a, off+int64(len(rec)), false
	j.stats.Commits++
	return nil
}

// Records returns every valid record still on flash, oldest first. It reads
// the flash again; records of a torn tail are not included.
func (j *Journal) Records() ([]Record, error) {
	scans, err := j.scan()
	if err != nil {
		return nil, err
	}
	var rs []Record
	for _, s := range scans {
		rs = append(rs, s.records...)
	}
	sort.Slice(rs, func(a, b int) bool { return rs[a].Seq < rs[b].Seq })
	return rs, nil
}
