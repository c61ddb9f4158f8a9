package ubootenv

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestEncodeLayout(t *testing.T) {
	env := Env{"b": "2", "a": "1"}
	got, err := Encode(env, 32, true, 7)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	wantData := append([]byte("a=1\x00b=2\x00\x00"), make([]byte, 32-5-9)...)
	if !bytes.Equal(got[5:], wantData) {
		t.Errorf("data = %q, want %q", got[5:], wantData)
	}
	if got[4] != 7 {
		t.Errorf("flag = %d, want 7", got[4])
	}
	// CRC32 of "a=1\0b=2\0\0" + 18 zero bytes, computed independently.
	if h := ReadHeader(got, true); !h.Valid || h.Flag != 7 {
		t.Errorf("ReadHeader = %+v, want valid with flag 7", h)
	}
	single, err := Encode(env, 32, false, 0)
	if err != nil {
		t.Fatalf("Encode single: %v", err)
	}
	if !bytes.Equal(single[4:], append([]byte("a=1\x00b=2\x00\x00"), make([]byte, 32-4-9)...)) {
		t.Errorf("single data = %q", single[4:])
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	envs := []Env{
		{},
		{"bootcmd": "run a; run b", "x": "", "ü": "ä=b"},
		{"meterupd_order": "B A", "meterupd_left_B": "3", "upgrade_available": "1", "bootcount": "0"},
	}
	for _, env := range envs {
		for _, red := range []bool{false, true} {
			b, err := Encode(env, 256, red, 3)
			if err != nil {
				t.Fatalf("Encode(%v): %v", env, err)
			}
			got, h, err := Decode(b, red)
			if err != nil {
				t.Fatalf("Decode(Encode(%v)): %v", env, err)
			}
			if !reflect.DeepEqual(got, env) {
				t.Errorf("Decode(Encode(%v)) = %v", env, got)
			}
			if red && h.Flag != 3 {
				t.Errorf("flag = %d, want 3", h.Flag)
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		env  Env
		size int
		want error
	}{
		{"too large", Env{"a": string(bytes.Repeat([]byte("x"), 300))}, 256, ErrTooLarge},
		{"exactly full", Env{"a": string(bytes.Repeat([]byte("x"), 256-5-4))}, 256, nil},
		{"one byte over", Env{"a": string(bytes.Repeat([]byte("x"), 256-5-3))}, 256, ErrTooLarge},
		{"empty name", Env{"": "x"}, 256, ErrBadName},
		{"= in name", Env{"a=b": "x"}, 256, ErrBadName},
		{"NUL in name", Env{"a\x00": "x"}, 256, ErrBadName},
		{"NUL in value", Env{"a": "x\x00y"}, 256, ErrBadValue},
		{"size too small", Env{}, MinSize - 1, ErrSize},
		{"size too big", Env{}, MaxSize + 1, ErrSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.env, tt.size, true, 1)
			if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
				t.Errorf("Encode = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseData(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    Env
		wantOff int64 // -1: no error
	}{
		{"empty", "\x00\x00\x00", Env{}, -1},
		{"zero length", "", Env{}, -1},
		{"two", "a=1\x00b=2\x00\x00junk", Env{"a": "1", "b": "2"}, -1},
		{"ends at area end", "a=1\x00b=2\x00", Env{"a": "1", "b": "2"}, -1},
		{"no equals skipped", "a=1\x00noeq\x00b=\x00\x00", Env{"a": "1", "b": ""}, -1},
		{"duplicate: last wins", "a=1\x00a=2\x00\x00", Env{"a": "2"}, -1},
		{"value with =", "a=b=c\x00\x00", Env{"a": "b=c"}, -1},
		{"empty name", "a=1\x00=x\x00\x00", nil, 5 + 4},
		{"unterminated", "a=1\x00bbbb", nil, 5 + 4},
		{"erased flash", "\xff\xff\xff", nil, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseData([]byte(tt.data), 5)
			if tt.wantOff < 0 {
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ParseData(%q) = %v, %v, want %v", tt.data, got, err, tt.want)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != tt.wantOff || !errors.Is(err, ErrFormat) {
				t.Errorf("ParseData(%q) error = %v, want a FormatError at %d", tt.data, err, tt.wantOff)
			}
		})
	}
}

func TestDecodeBadCRC(t *testing.T) {
	b, err := Encode(Env{"a": "1"}, 64, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 3, 5, 20, 63} {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if _, _, err := Decode(c, true); !errors.Is(err, ErrCRC) {
			t.Errorf("Decode with byte %d flipped = %v, want ErrCRC", i, err)
		}
	}
	// The flag byte is outside the CRC, as in U-Boot.
	c := append([]byte(nil), b...)
	c[4] = 9
	if _, h, err := Decode(c, true); err != nil || h.Flag != 9 {
		t.Errorf("Decode with flag changed = %v, %v, want flag 9", h, err)
	}
}

func TestChoose(t *testing.T) {
	ok := func(f byte) Header { return Header{Valid: true, Flag: f} }
	bad := func(f byte) Header { return Header{Flag: f} }
	tests := []struct {
		name   string
		style  FlagStyle
		h0, h1 Header
		want   int
	}{
		{"both bad", Counter, bad(1), bad(2), -1},
		{"first bad", Counter, bad(9), ok(1), 1},
		{"second bad", Counter, ok(1), bad(9), 0},
		{"older serial loses", Counter, ok(4), ok(5), 1},
		{"older serial loses, first newer", Counter, ok(6), ok(5), 0},
		{"255 then 0: 0 newer", Counter, ok(255), ok(0), 1},
		{"0 then 255: 0 newer", Counter, ok(0), ok(255), 0},
		{"254 vs 255", Counter, ok(254), ok(255), 1},
		{"equal: first", Counter, ok(7), ok(7), 0},
		{"nor active obsolete", ActiveObsolete, ok(1), ok(0), 0},
		{"nor obsolete active", ActiveObsolete, ok(0), ok(1), 1},
		{"nor both active (cut before obsoleting)", ActiveObsolete, ok(1), ok(1), 0},
		{"nor both obsolete", ActiveObsolete, ok(0), ok(0), 0},
		{"nor erased flag first", ActiveObsolete, ok(0xFF), ok(1), 0},
		{"nor erased flag second", ActiveObsolete, ok(1), ok(0xFF), 1},
		{"nor both erased", ActiveObsolete, ok(0xFF), ok(0xFF), 0},
		{"nor bit flip: first", ActiveObsolete, ok(0x03), ok(0x01), 0},
		{"nor bit flip in second: first", ActiveObsolete, ok(0x00), ok(0x81), 0},
		{"nor bad crc wins over flags", ActiveObsolete, bad(1), ok(0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Choose(tt.style, tt.h0, tt.h1); got != tt.want {
				t.Errorf("Choose(%v, %+v, %+v) = %d, want %d", tt.style, tt.h0, tt.h1, got, tt.want)
			}
		})
	}
}

func TestProtected(t *testing.T) {
	env := Env{FlagsVar: "ethaddr:mo,serial#:sr,bootdelay:dw,odd,:x,boot:sa", "ethaddr": "02:00:00:00:00:01", "serial#": "42", "bootdelay": "1", "boot": "x"}
	for name, want := range map[string]bool{"ethaddr": true, "serial#": true, "bootdelay": false, "boot": false, "nosuch": false} {
		if got := Protected(env, name); got != want {
			t.Errorf("Protected(%q) = %v, want %v", name, got, want)
		}
	}
	delete(env, "ethaddr")
	if Protected(env, "ethaddr") {
		t.Errorf("Protected(unset write-once variable) = true, want false")
	}
}
