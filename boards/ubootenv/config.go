package ubootenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DefaultConfigPath is where fw_printenv looks when no -c is given.
const DefaultConfigPath = "/etc/fw_env.config"

// maxConfigSize caps the configuration file read into memory.
const maxConfigSize = 64 << 10

// Location is one copy of the environment, one line of fw_env.config:
//
//	# device      offset   size     [sector size  [sectors]]
//	/dev/mtd1     0x0      0x20000  0x20000
//	/dev/mtd2     0x0      0x20000  0x20000
type Location struct {
	// Device is the file, block device or MTD character device.
	Device string
	// Offset of the copy in Device. Negative counts back from the end of a
	// block device (libubootenv).
	Offset int64
	// Size of the copy in bytes, header included (CONFIG_ENV_SIZE).
	Size int64
	// SectorSize is the erase block size on flash; 0 means the device's.
	SectorSize int64
	// Sectors is how many erase blocks the copy may span on NAND, bad
	// blocks included; 0 means 1.
	Sectors int64
}

// Config is a parsed fw_env.config: one copy, or two redundant copies.
type Config struct {
	Copies []Location
}

// Redundant reports whether the environment has two copies.
func (c Config) Redundant() bool { return len(c.Copies) == 2 }

// ErrConfig is wrapped by every *ConfigError.
var ErrConfig = errors.New("ubootenv: invalid fw_env.config")

// ConfigError is a mistake on one line of fw_env.config.
type ConfigError struct {
	Line   int
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("ubootenv: fw_env.config line %d: %s", e.Line, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrConfig }

// ReadConfig reads an fw_env.config file.
func ReadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("ubootenv: read config: %w", err)
	}
	defer f.Close()
	return ParseConfig(f)
}

// ParseConfig parses the fw_env.config format of U-Boot's tools and
// libubootenv: one line per copy, fields separated by blanks, lines
// starting with '#' and blank lines ignored. The offset is a C integer
// (decimal, 0x hex, 0 octal, may be negative); size, sector size and
// sector count are hexadecimal with or without 0x, as their sscanf("%lx")
// reads them. A field starting with '#' ends the line.
//
// Unlike the C tools, which skip a line they cannot read, ParseConfig
// reports it: a misread environment location must not go unnoticed.
func ParseConfig(r io.Reader) (Config, error) {
	var c Config
	sc := bufio.NewScanner(io.LimitReader(r, maxConfigSize+1))
	sc.Buffer(make([]byte, 0, 4096), maxConfigSize+1)
	n, read := 0, 0
	for sc.Scan() {
		n++
		read += len(sc.Bytes()) + 1
		if read > maxConfigSize+1 {
			return Config{}, &ConfigError{Line: n, Reason: "file too large"}
		}
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		for i, f := range fields {
			if strings.HasPrefix(f, "#") {
				fields = fields[:i]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		loc, err := parseLocation(fields)
		if err != nil {
			return Config{}, &ConfigError{Line: n, Reason: err.Error()}
		}
		if len(c.Copies) == 2 {
			return Config{}, &ConfigError{Line: n, Reason: "more than two copies"}
		}
		if len(c.Copies) == 1 && c.Copies[0].Size != loc.Size {
			return Config{}, &ConfigError{Line: n, Reason: fmt.Sprintf("size %#x differs from the first copy's %#x", loc.Size, c.Copies[0].Size)}
		}
		c.Copies = append(c.Copies, loc)
	}
	if err := sc.Err(); err != nil {
		return Config{}, &ConfigError{Line: n + 1, Reason: err.Error()}
	}
	if len(c.Copies) == 0 {
		return Config{}, &ConfigError{Line: n, Reason: "no environment location"}
	}
	return c, nil
}

func parseLocation(f []string) (Location, error) {
	if len(f) < 3 {
		return Location{}, errors.New("want: device offset size [sector-size [sectors]]")
	}
	if len(f) > 5 {
		return Location{}, fmt.Errorf("%d fields, want at most 5", len(f))
	}
	loc := Location{Device: f[0]}
	var err error
	if loc.Offset, err = parseCInt(f[1]); err != nil {
		return Location{}, fmt.Errorf("offset %q: %w", f[1], err)
	}
	if loc.Size, err = parseHex(f[2]); err != nil {
		return Location{}, fmt.Errorf("size %q: %w", f[2], err)
	}
	if loc.Size < MinSize || loc.Size > MaxSize {
		return Location{}, fmt.Errorf("size %#x outside %#x..%#x", loc.Size, MinSize, MaxSize)
	}
	if len(f) > 3 {
		if loc.SectorSize, err = parseHex(f[3]); err != nil {
			return Location{}, fmt.Errorf("sector size %q: %w", f[3], err)
		}
		if loc.SectorSize > MaxSize {
			return Location{}, fmt.Errorf("sector size %#x above %#x", loc.SectorSize, MaxSize)
		}
	}
	if len(f) > 4 {
		if loc.Sectors, err = parseHex(f[4]); err != nil {
			return Location{}, fmt.Errorf("sectors %q: %w", f[4], err)
		}
		if loc.Sectors > 1024 {
			return Location{}, fmt.Errorf("sectors %#x above 0x400", loc.Sectors)
		}
	}
	return loc, nil
}

// parseCInt parses a C integer literal as strtoll(s, 0) does: optional
// sign, then 0x hex, 0 octal or decimal; the whole field must be used.
func parseCInt(s string) (int64, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || strings.ContainsAny(s, "+-_") {
		return 0, errors.New("not a number")
	}
	v, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	if neg {
		v = -v
	}
	return v, nil
}

// parseHex parses a non-negative hexadecimal number, 0x optional, as
// scanf("%lx") does.
func parseHex(s string) (int64, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s = s[2:]
	}
	if s == "" || strings.ContainsAny(s, "+-_") {
		return 0, errors.New("not a hexadecimal number")
	}
	v, err := strconv.ParseInt(s, 16, 64)
	if err != nil {
		return 0, errors.New("not a hexadecimal number")
	}
	return v, nil
}
