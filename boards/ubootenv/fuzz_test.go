package ubootenv

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func addTestdata(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecode feeds arbitrary copies to Decode, single and redundant: no
// panic, and what decodes re-encodes to the same variables.
func FuzzDecode(f *testing.F) {
	addTestdata(f, "*.bin")
	addTestdata(f, "*.img")
	for _, env := range []Env{{}, interopEnv, newEnv} {
		b, _ := Encode(env, 256, true, 1)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, red := range []bool{false, true} {
			env, h, err := Decode(b, red)
			if err != nil {
				continue
			}
			again, err := Encode(env, len(b), red, h.Flag)
			if err != nil {
				t.Fatalf("Encode(Decode(b)) = %v", err)
			}
			env2, h2, err := Decode(again, red)
			if err != nil || !reflect.DeepEqual(env, env2) || h2.Flag != h.Flag {
				t.Fatalf("round trip: %v, %v, %v; want %v", env2, h2, err, env)
			}
		}
		// Two copies of half the input each: Choose and Load must agree
		// and never panic.
		if len(b) >= 2*MinSize {
			half := len(b) / 2
			for _, style := range []FlagStyle{Counter, ActiveObsolete} {
				c := Choose(style, ReadHeader(b[:half], true), ReadHeader(b[half:2*half], true))
				if c < -1 || c > 1 {
					t.Fatalf("Choose = %d", c)
				}
			}
		}
	})
}

// FuzzParseConfig: no panic; what parses prints back to the same config.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.config"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("a -0x10 10 20 3\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseConfig(strings.NewReader(text))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for _, l := range c.Copies {
			buf.WriteString(l.Device)
			for _, v := range []int64{l.Offset, l.Size, l.SectorSize, l.Sectors} {
				buf.WriteString(" ")
				if v < 0 {
					buf.WriteString("-0x" + strconv.FormatInt(-v, 16))
				} else {
					buf.WriteString("0x" + strconv.FormatInt(v, 16))
				}
			}
			buf.WriteString("\n")
		}
		c2, err := ParseConfig(&buf)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("reparse of %q = %+v, %v; want %+v", buf.String(), c2, err, c)
		}
	})
}
