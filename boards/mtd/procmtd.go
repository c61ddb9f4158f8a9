package mtd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Partition is one line of /proc/mtd.
type Partition struct {
	Index     int    // N of /dev/mtdN
	Size      int64  // bytes
	EraseSize int64  // bytes
	Name      string // without quotes
}

// ErrProcMTD: /proc/mtd does not parse.
var ErrProcMTD = errors.New("mtd: malformed /proc/mtd")

// maxProcMTD caps what ParsePartitions reads: the kernel allows at most 64
// MTD devices by default, each line is well under 128 bytes.
const maxProcMTD = 64 << 10

// ReadPartitions reads and parses a /proc/mtd file.
func ReadPartitions(path string) ([]Partition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mtd: %w", err)
	}
	defer f.Close()
	return ParsePartitions(f)
}

// ParsePartitions parses the text of /proc/mtd:
//
//	dev:    size   erasesize  name
//	mtd0: 00100000 00020000 "journal"
//
// A malformed line fails with an error wrapping ErrProcMTD that names it.
func ParsePartitions(r io.Reader) ([]Partition, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxProcMTD+1))
	if err != nil {
		return nil, fmt.Errorf("mtd: read /proc/mtd: %w", err)
	}
	if len(data) > maxProcMTD {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrProcMTD, maxProcMTD)
	}
	var parts []Partition
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if line == 1 && strings.HasPrefix(text, "dev:") || strings.TrimSpace(text) == "" {
			continue
		}
		p, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrProcMTD, line, err)
		}
		parts = append(parts, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProcMTD, err)
	}
	return parts, nil
}

func parseLine(text string) (Partition, error) {
	var p Partition
	dev, rest, ok := strings.Cut(text, ": ")
	if !ok || !strings.HasPrefix(dev, "mtd") {
		return p, errors.New("no mtdN: prefix")
	}
	idx, err := strconv.ParseUint(dev[3:], 10, 16)
	if err != nil {
		return p, fmt.Errorf("device number %q", dev[3:])
	}
	fields := strings.SplitN(strings.TrimLeft(rest, " "), " ", 3)
	if len(fields) != 3 {
		return p, errors.New("want size, erase size and name")
	}
	size, err := strconv.ParseUint(fields[0], 16, 63)
	if err != nil {
		return p, fmt.Errorf("size %q", fields[0])
	}
	es, err := strconv.ParseUint(fields[1], 16, 32)
	if err != nil {
		return p, fmt.Errorf("erase size %q", fields[1])
	}
	name := fields[2]
	if len(name) < 2 || name[0] != '"' || name[len(name)-1] != '"' {
		return p, fmt.Errorf("name %q not quoted", name)
	}
	return Partition{Index: int(idx), Size: int64(size), EraseSize: int64(es), Name: name[1 : len(name)-1]}, nil
}

// Format writes parts in the /proc/mtd format (for tests and fake trees).
func Format(parts []Partition) string {
	var b strings.Builder
	b.WriteString("dev:    size   erasesize  name\n")
	for _, p := range parts {
		fmt.Fprintf(&b, "mtd%d: %08x %08x %q\n", p.Index, p.Size, p.EraseSize, p.Name)
	}
	return b.String()
}

// Find returns the partition called name.
func Find(parts []Partition, name string) (Partition, bool) {
	for _, p := range parts {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

func isIOError(err error) bool { return errors.Is(err, syscall.EIO) }

// OpenDevice opens an MTD character device such as /dev/mtd3 raw, without
// the driver's bad-block mapping (smoke tests, tools).
func OpenDevice(path string, readOnly bool) (Device, error) { return openDevice(path, readOnly) }
