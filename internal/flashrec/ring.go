package flashrec

import (
	"errors"
	"fmt"
	"sort"

	"meterupd/boards/hw"
)

// RingConfig describes a ring's frames.
type RingConfig struct {
	Magic      [4]byte
	Version    uint16
	MaxPayload int // cap on a payload; a larger one is ErrTooLarge
	// MinArea groups small erase blocks into areas of at least this many
	// bytes (0: one erase block per area).
	MinArea int64
}

// Ring keeps the newest frames of a region, overwriting the oldest area
// when the newest is full (see the package doc). It is not safe for
// concurrent use.
type Ring struct {
	f        hw.Flash
	cfg      RingConfig
	areaSize int64
	areas    int

	nextSeq uint64
	cur     int   // area of the newest frame
	end     int64 // dirty end within cur
	frames  []Frame
	torn    int // invalid write units seen at open
}

// OpenRing scans the region f. It never writes.
func OpenRing(f hw.Flash, cfg RingConfig) (*Ring, error) {
	es, ws, size := f.EraseSize(), f.WriteSize(), f.Size()
	if es <= 0 || ws <= 0 || es%ws != 0 || size%es != 0 {
		return nil, fmt.Errorf("%w: size %d, erase %d, write %d", ErrGeometry, size, es, ws)
	}
	k := int64(1)
	if cfg.MinArea > es {
		k = (cfg.MinArea + es - 1) / es
	}
	r := &Ring{f: f, cfg: cfg, areaSize: k * es, areas: int(size / (k * es))}
	if r.areas < 2 {
		return nil, fmt.Errorf("%w: %d-byte region holds %d area(s) of %d bytes, need 2", ErrGeometry, size, r.areas, r.areaSize)
	}
	if Pad(HeaderSize+int64(cfg.MaxPayload), ws) > r.areaSize {
		return nil, fmt.Errorf("%w: payload cap %d does not fit an area of %d bytes", ErrGeometry, cfg.MaxPayload, r.areaSize)
	}
	buf, err := ReadRegion(f)
	if err != nil {
		return nil, err
	}
	var best uint64
	found := false
	ends := make([]int64, r.areas)
	for a := 0; a < r.areas; a++ {
		s, err := ScanBytes(buf[int64(a)*r.areaSize:int64(a+1)*r.areaSize], ws, cfg.Magic, cfg.Version, cfg.MaxPayload)
		if err != nil {
			return nil, err
		}
		ends[a] = s.DirtyEnd
		r.torn += len(s.Invalid)
		for _, fr := range s.Frames {
			fr.Off += int64(a) * r.areaSize
			r.frames = append(r.frames, fr)
			if !found || fr.Seq > best {
				best, found, r.cur = fr.Seq, true, a
			}
		}
	}
	sort.SliceStable(r.frames, func(i, j int) bool { return r.frames[i].Seq < r.frames[j].Seq })
	if found {
		r.nextSeq = best + 1
		r.end = ends[r.cur]
	} else {
		r.nextSeq = 1
		r.cur = r.areas - 1 // the first append erases and uses area 0
		r.end = r.areaSize
	}
	return r, nil
}

// Frames returns the valid frames, oldest first. Payloads must not be modified.
func (r *Ring) Frames() []Frame { return r.frames }

// Newest returns the newest frame.
func (r *Ring) Newest() (Frame, bool) {
	if len(r.frames) == 0 {
		return Frame{}, false
	}
	return r.frames[len(r.frames)-1], true
}

// Torn returns the invalid write units found when the ring was opened.
func (r *Ring) Torn() int { return r.torn }

// Capacity returns how many frames of a payload of n bytes one area holds,
// and the number of areas.
func (r *Ring) Capacity(n int) (perArea int64, areas int) {
	return r.areaSize / Pad(HeaderSize+int64(n), r.f.WriteSize()), r.areas
}

// Append adds payload after the newest frame, erasing the oldest area when
// the newest is full. A program that fails or reads back wrong moves on to
// a fresh area (once per area).
func (r *Ring) Append(payload []byte) error { return r.write(payload, false) }

// Replace writes payload into a freshly erased next area: the previous
// newest frame stays intact until the new one is complete.
func (r *Ring) Replace(payload []byte) error { return r.write(payload, true) }

func (r *Ring) write(payload []byte, fresh bool) error {
	if len(payload) > r.cfg.MaxPayload {
		return fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, len(payload), r.cfg.MaxPayload)
	}
	var errs []error
	for try := 0; try <= r.areas; try++ {
		// A failed attempt may still read valid later: its sequence
		// number is never reused for different content.
		frame := Encode(r.cfg.Magic, r.cfg.Version, r.nextSeq, payload, r.f.WriteSize())
		a, off := r.cur, r.end
		if fresh || try > 0 || off+int64(len(frame)) > r.areaSize {
			a, off = (r.cur+1)%r.areas, 0
			if err := r.f.Erase(int64(a)*r.areaSize, r.areaSize); err != nil {
				errs = append(errs, err)
				if !errors.Is(err, hw.ErrBadBlock) {
					return fmt.Errorf("flashrec: erase area %d: %w", a, err)
				}
				r.cur, r.end = a, r.areaSize // skip the bad area
				continue
			}
			r.dropArea(a)
			r.cur, r.end = a, 0
		}
		err := Program(r.f, frame, int64(a)*r.areaSize+off)
		r.nextSeq++
		if err == nil {
			fr, _, _ := Parse(frame, r.cfg.Magic, r.cfg.Version, r.cfg.MaxPayload)
			fr.Off = int64(a)*r.areaSize + off
			r.frames = append(r.frames, fr)
			r.end = off + int64(len(frame))
			return nil
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrVerify) && !errors.Is(err, hw.ErrBadBlock) && !errors.Is(err, hw.ErrNotErased) {
			return err
		}
		r.end = r.areaSize // this area is not trusted any more
	}
	return fmt.Errorf("flashrec: no writable area: %w", errors.Join(errs...))
}

// dropArea forgets the frames of area a, which was just erased.
func (r *Ring) dropArea(a int) {
	lo, hi := int64(a)*r.areaSize, int64(a+1)*r.areaSize
	kept := r.frames[:0]
	for _, f := range r.frames {
		if f.Off < lo || f.Off >= hi {
			kept = append(kept, f)
		}
	}
	r.frames = kept
}
