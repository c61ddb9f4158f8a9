package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"meterupd/boards/hw"
	"meterupd/internal/flashrec"
)

// Version is the legal log's frame format. An agent reads frames of any
// version far enough to chain them (the hash covers the raw frame); it
// decodes only versions up to its own.
const Version = 1

var legalMagic = [4]byte{'M', 'U', 'A', 'L'}

// anyVersion lets the scan accept frames of every version: a rollback
// starts an older agent on a log a newer one wrote, and the older agent
// must keep appending to it.
const anyVersion = 0xFFFF

// MaxFrame is the largest frame a record can need on a flash with write
// unit 1; on a larger write unit it is padded to the unit.
const MaxFrame = flashrec.HeaderSize + MaxPayload

// Log is the legal-metrology audit log on its own partition: append-only,
// hash-chained, never erased by this package (there is no API that erases
// it). It is not safe for concurrent use.
type Log struct {
	f   hw.Flash
	s   flashrec.Scan
	rep Report
}

// Open reads the log on f. It never writes. An erased partition is an
// empty log, ready for its first record. Data that cannot be the start of
// a log is ErrForeign.
func Open(f hw.Flash) (*Log, error) {
	es, ws, size := f.EraseSize(), f.WriteSize(), f.Size()
	if es <= 0 || ws <= 0 || size <= 0 || size%ws != 0 || flashrec.Pad(MaxFrame, ws) > size || size > flashrec.MaxRegion {
		return nil, fmt.Errorf("%w: size %d, erase %d, write %d", ErrGeometry, size, es, ws)
	}
	l := &Log{f: f}
	if err := l.reload(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) reload() error {
	buf, err := flashrec.ReadRegion(l.f)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	s, err := flashrec.ScanBytes(buf, l.f.WriteSize(), legalMagic, anyVersion, MaxPayload)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if len(s.Frames) == 0 && s.DirtyEnd > 0 && !tornStart(buf, l.f.WriteSize()) {
		return fmt.Errorf("%w: %d bytes of data and no record", ErrForeign, s.DirtyEnd)
	}
	l.s = s
	l.rep = verify(s)
	return nil
}

// tornStart reports whether the data in an otherwise recordless partition
// can be a first record torn by a power cut: confined to the first frame's
// range, and starting with bits a program of the magic can leave (a torn
// program only clears some of the bits it should clear).
func tornStart(buf []byte, ws int64) bool {
	n := flashrec.Pad(MaxFrame, ws)
	for _, c := range buf[n:] {
		if c != 0xFF {
			return false
		}
	}
	for i, m := range legalMagic {
		if buf[i]&m != m {
			return false
		}
	}
	return true
}

// Report is the outcome of walking the chain.
type Report struct {
	Records int    `json:"records"`
	HeadSeq uint64 `json:"head_seq"`
	// HeadHash is the hash of the newest record: the anchor the head-end
	// keeps, so that a log cut short after its last report is noticed.
	HeadHash []byte `json:"head_hash"`
	// TornGaps counts stretches of torn writes between records whose link
	// holds: a record whose program a power cut interrupted was never
	// acknowledged, and the next record links to the one before it.
	TornGaps int `json:"torn_gaps"`
	// TornTail: damaged data after the newest record (an interrupted
	// append, or an altered newest record: only the head-end's anchor
	// tells them apart).
	TornTail bool `json:"torn_tail"`
	// Unchecked counts records of a newer format whose links this build
	// cannot read; they are chained all the same.
	Unchecked int `json:"unchecked"`
	// Break is the first broken link, nil when the chain holds.
	Break *Break `json:"break,omitempty"`
	// Bytes used and the partition's size.
	Used, Size int64
}

// Break is a broken link of the chain.
type Break struct {
	Seq    uint64 `json:"seq"`    // the record whose link does not hold
	Offset int64  `json:"offset"` // its offset in the partition
	Reason string `json:"reason"`
}

// OK reports whether the chain holds.
func (r Report) OK() bool { return r.Break == nil }

func verify(s flashrec.Scan) Report {
	rep := Report{Used: s.DirtyEnd}
	prev := make([]byte, sha256.Size)
	var prevSeq uint64
	inv := 0 // index into s.Invalid
	for _, fr := range s.Frames {
		gap := false
		for inv < len(s.Invalid) && s.Invalid[inv] < fr.Off {
			gap = true
			inv++
		}
		rep.Records++
		reason := ""
		switch {
		case fr.Seq != prevSeq+1:
			reason = fmt.Sprintf("sequence %d after %d", fr.Seq, prevSeq)
		case fr.Version > Version:
			rep.Unchecked++
		default:
			r, err := DecodeRecord(fr.Payload)
			if err != nil {
				reason = err.Error()
			} else if !bytes.Equal(r.Prev, prev) {
				reason = "previous-record hash does not match"
			}
		}
		if reason != "" && rep.Break == nil {
			rep.Break = &Break{Seq: fr.Seq, Offset: fr.Off, Reason: reason}
		}
		if reason == "" && gap {
			rep.TornGaps++
		}
		h := sha256.Sum256(fr.Raw)
		prev, prevSeq = h[:], fr.Seq
	}
	rep.TornTail = inv < len(s.Invalid)
	rep.HeadSeq, rep.HeadHash = prevSeq, prev
	return rep
}

// Verify walks the chain as it was when the log was opened or last
// appended to.
func (l *Log) Verify() Report {
	r := l.rep
	r.Size = l.f.Size()
	return r
}

// VerifyFlash opens the log on f and walks its chain.
func VerifyFlash(f hw.Flash) (Report, error) {
	l, err := Open(f)
	if err != nil {
		return Report{}, err
	}
	return l.Verify(), nil
}

// Records returns the records, oldest first. A record of a newer format
// has only Seq and Kind "unknown"; one that does not decode has Kind
// "undecodable" (Verify reports it as a break).
func (l *Log) Records() []Record {
	out := make([]Record, 0, len(l.s.Frames))
	for _, fr := range l.s.Frames {
		var r Record
		var err error
		switch {
		case fr.Version > Version:
			r.Kind = "unknown"
		default:
			r, err = DecodeRecord(fr.Payload)
			if err != nil {
				r = Record{Kind: "undecodable", Detail: err.Error()}
			}
		}
		r.Seq = fr.Seq
		out = append(out, r)
	}
	return out
}

// Remaining returns how many more records of the largest size fit.
func (l *Log) Remaining() int64 {
	return (l.f.Size() - l.s.DirtyEnd) / flashrec.Pad(MaxFrame, l.f.WriteSize())
}

// Append adds r to the log: Seq and Prev are set here, and r is returned
// as stored. When the record does not fit, Append fails with ErrFull and
// writes nothing: the log is never overwritten. Any other failure (a power
// cut, a flash error) leaves the log as flash has it; the log is re-read
// so the next Append links to what is really there.
func (l *Log) Append(r Record) (Record, error) {
	r.Seq = l.rep.HeadSeq + 1
	r.Prev = append([]byte(nil), l.rep.HeadHash...)
	if err := r.check(); err != nil {
		return Record{}, err
	}
	payload, err := r.encode()
	if err != nil {
		return Record{}, err
	}
	frame := flashrec.Encode(legalMagic, Version, r.Seq, payload, l.f.WriteSize())
	off := l.s.DirtyEnd
	if off > l.f.Size()-int64(len(frame)) {
		return Record{}, fmt.Errorf("%w: %d of %d bytes used, record needs %d", ErrFull, off, l.f.Size(), len(frame))
	}
	if err := flashrec.Program(l.f, frame, off); err != nil {
		if rerr := l.reload(); rerr != nil {
			return Record{}, errors.Join(fmt.Errorf("audit: append: %w", err), rerr)
		}
		return Record{}, fmt.Errorf("audit: append: %w", err)
	}
	fr, _, _ := flashrec.Parse(frame, legalMagic, Version, MaxPayload)
	fr.Off = off
	l.s.Frames = append(l.s.Frames, fr)
	l.s.DirtyEnd = off + int64(len(frame))
	// The new record links to the head: extend the report instead of
	// walking the whole chain again.
	h := sha256.Sum256(fr.Raw)
	l.rep.Records++
	l.rep.HeadSeq, l.rep.HeadHash, l.rep.Used = r.Seq, h[:], l.s.DirtyEnd
	if l.rep.TornTail { // the torn tail is now a gap before this record
		l.rep.TornTail = false
		l.rep.TornGaps++
	}
	return r, nil
}
