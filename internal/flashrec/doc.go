// Package flashrec frames records on raw flash and keeps logs of them under
// the flash rules of boards/hw: a range is erased before it is programmed,
// programs are whole write units, and a power cut may tear any program or
// erase. It is the shared layer under the legal audit log, the operational
// ring (package audit) and the common data areas (package common).
//
// # Frame
//
// A frame is a 32-byte header, the payload, and zero padding to the write
// unit, so that every frame starts on a write unit:
//
//	0  magic, 4 bytes (one per user: "MUAL", "MUOP", "MUCS", …)
//	4  format version, u16 little endian
//	6  header size, u16 (32)
//	8  sequence number, u64
//	16 payload length, u32
//	20 frame length, u32: header + payload + padding
//	24 CRC-32C of payload and padding
//	28 CRC-32C of header bytes 0..28
//
// The magic is checked first and the header CRC before any length is used,
// so erased flash or a torn header is never read as a length; a length is
// also bounded by the region and by the caller's payload cap before
// anything is allocated.
//
// # Scanning
//
// Scan walks a region write unit by write unit: a valid frame is taken and
// skipped whole; anything else that is not erased (a torn or damaged frame)
// is noted and skipped one write unit at a time. The region's dirty end is
// the end of the last write unit holding a non-erased byte: appends go
// there and never over a byte that is not erased, so a torn frame is never
// programmed over (NAND pages are written once).
//
// # Ring
//
// Ring splits a region into areas of whole erase blocks and keeps the frames
// with the highest sequence numbers: Append adds after the newest frame, and
// when the newest area is full erases the oldest area and continues there.
// Replace always writes into a freshly erased next area, which keeps the
// previous frame intact until the new one is complete: a power-safe
// snapshot store (two areas are enough).
package flashrec
