package qemutest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// GPT disk images for the guest's block devices (UEFI spec 2.10, chapter 5):
// a protective MBR in LBA 0, the primary header in LBA 1, 128 entries of 128
// bytes from LBA 2, and the backup entries and header at the end of the disk.

const (
	lba        = 512
	gptEntries = 128
	gptEntry   = 128
	entryLBAs  = gptEntries * gptEntry / lba // 32
)

// ErrGPT: a partition table that cannot be written.
var ErrGPT = errors.New("qemutest: invalid gpt layout")

// GPTPart is one partition, in 512-byte sectors.
type GPTPart struct {
	Name     string // the GPT name (Linux: PARTNAME= in uevent)
	FirstLBA int64
	LastLBA  int64 // inclusive
}

// linuxData is the "Linux filesystem data" type GUID
// 0FC63DAF-8483-4772-8E79-3D69D8477DE4 in its on-disk byte order.
var linuxData = [16]byte{0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4}

// WriteGPT writes a GPT partition table for a disk of size bytes to w.
func WriteGPT(w io.WriterAt, size int64, parts []GPTPart) error {
	if size%lba != 0 || size < 2*(2+entryLBAs)*lba {
		return fmt.Errorf("%w: disk size %d", ErrGPT, size)
	}
	last := size/lba - 1
	firstUsable, lastUsable := int64(2+entryLBAs), last-1-entryLBAs
	if len(parts) > gptEntries {
		return fmt.Errorf("%w: %d partitions", ErrGPT, len(parts))
	}
	entries := make([]byte, gptEntries*gptEntry)
	for i, p := range parts {
		if p.FirstLBA < firstUsable || p.LastLBA > lastUsable || p.LastLBA < p.FirstLBA {
			return fmt.Errorf("%w: %s: sectors %d..%d outside %d..%d", ErrGPT, p.Name, p.FirstLBA, p.LastLBA, firstUsable, lastUsable)
		}
		name := utf16.Encode([]rune(p.Name))
		if len(name) > 36 {
			return fmt.Errorf("%w: name %q longer than 36 UTF-16 units", ErrGPT, p.Name)
		}
		e := entries[i*gptEntry:]
		copy(e[0:16], linuxData[:])
		copy(e[16:32], guid(byte(i+1)))
		binary.LittleEndian.PutUint64(e[32:], uint64(p.FirstLBA))
		binary.LittleEndian.PutUint64(e[40:], uint64(p.LastLBA))
		for j, u := range name {
			binary.LittleEndian.PutUint16(e[56+2*j:], u)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)

	mbr := make([]byte, lba)
	pe := mbr[446:]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	pe[4] = 0xEE                           // GPT protective
	pe[5], pe[6], pe[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(pe[8:], 1)
	binary.LittleEndian.PutUint32(pe[12:], uint32(min(last, 0xFFFFFFFF)))
	mbr[510], mbr[511] = 0x55, 0xAA

	header := func(my, alt, entryLBA int64) []byte {
		h := make([]byte, lba)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], uint64(my))
		binary.LittleEndian.PutUint64(h[32:], uint64(alt))
		binary.LittleEndian.PutUint64(h[40:], uint64(firstUsable))
		binary.LittleEndian.PutUint64(h[48:], uint64(lastUsable))
		copy(h[56:72], guid(0xD0))
		binary.LittleEndian.PutUint64(h[72:], uint64(entryLBA))
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], gptEntry)
		binary.LittleEndian.PutUint32(h[88:], entriesCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	for _, wr := range []struct {
		off  int64
		data []byte
	}{
		{0, mbr},
		{1 * lba, header(1, last, 2)},
		{2 * lba, entries},
		{(last - entryLBAs) * lba, entries},
		{last * lba, header(last, 1, last-entryLBAs)},
	} {
		if _, err := w.WriteAt(wr.data, wr.off); err != nil {
			return fmt.Errorf("qemutest: write gpt: %w", err)
		}
	}
	return nil
}

// guid is a fixed, valid (version 4, variant 1) GUID that differs by n:
// images are reproducible.
func guid(n byte) []byte {
	g := []byte{n, 0x6d, 0x65, 0x74, 0x65, 0x72, 0x75, 0x40, 0x80, 0x64, 0x71, 0x65, 0x6d, 0x75, 0x00, n}
	return g
}
