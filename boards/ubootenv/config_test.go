package ubootenv

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []Location
	}{
		{"nand two devices", "# MTD device name\tDevice offset\tEnv. size\tFlash sector size\tNumber of sectors\n/dev/mtd1 0x0000 0x20000 0x20000\n/dev/mtd2 0x0000 0x20000 0x20000\n",
			[]Location{{"/dev/mtd1", 0, 0x20000, 0x20000, 0}, {"/dev/mtd2", 0, 0x20000, 0x20000, 0}}},
		{"sizes hex without 0x", "/dev/mmcblk0 0x400000 4000\n", []Location{{"/dev/mmcblk0", 0x400000, 0x4000, 0, 0}}},
		{"decimal and octal offsets", "f 4096 0x100\nf 010000 0x100\n", []Location{{"f", 4096, 0x100, 0, 0}, {"f", 0o10000, 0x100, 0, 0}}},
		{"negative offset", "/dev/mmcblk0boot1 -0x4000 0x4000\n", []Location{{"/dev/mmcblk0boot1", -0x4000, 0x4000, 0, 0}}},
		{"sectors and trailing comment", "/dev/mtd3 0 0x4000 0x20000 2 # env\n\n   \n", []Location{{"/dev/mtd3", 0, 0x4000, 0x20000, 2}}},
		{"tabs", "\t/dev/mtd1\t0x0\t0x1000\n", []Location{{"/dev/mtd1", 0, 0x1000, 0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig(strings.NewReader(tt.text))
			if err != nil || !reflect.DeepEqual(got.Copies, tt.want) {
				t.Errorf("ParseConfig(%q) = %+v, %v, want %+v", tt.text, got.Copies, err, tt.want)
			}
			if got.Redundant() != (len(tt.want) == 2) {
				t.Errorf("Redundant() = %v", got.Redundant())
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line       int
	}{
		{"empty", "# nothing\n", 1},
		{"two fields", "/dev/mtd1 0x0\n", 1},
		{"size zero", "/dev/mtd1 0 0\n", 1},
		{"size not hex", "/dev/mtd1 0 0x10zz\n", 1},
		{"size huge", "/dev/mtd1 0 0xffffffffffff\n", 1},
		{"offset junk", "/dev/mtd1 0k 0x1000\n", 1},
		{"octal with 9", "/dev/mtd1 09 0x1000\n", 1},
		{"three copies", "a 0 0x100\nb 0 0x100\nc 0 0x100\n", 3},
		{"sizes differ", "a 0 0x100\n# x\nb 0 0x200\n", 3},
		{"six fields", "a 0 0x100 0x100 1 1\n", 1},
		{"negative size", "a 0 -0x100\n", 1},
		{"sector count huge", "a 0 0x100 0x100 0xffffff\n", 1},
		{"long line", "a 0 0x100 " + strings.Repeat("x", 70000) + "\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.text))
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) || ce.Line != tt.line {
				t.Errorf("ParseConfig(%.40q) = %v, want a ConfigError on line %d", tt.text, err, tt.line)
			}
		})
	}
}
