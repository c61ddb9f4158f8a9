package modem

import (
	"errors"
	"testing"
)

func FuzzParseQIND(f *testing.F) {
	addLines(f, "qind.txt")
	f.Fuzz(func(t *testing.T, line string) {
		q, err := ParseQIND(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseQIND(%q) = %v, not ErrSyntax", line, err)
			}
			return
		}
		if q.Value < -1 || q.Value > 65535 {
			t.Fatalf("ParseQIND(%q).Value = %d", line, q.Value)
		}
		again, err := ParseQIND(FormatQIND(q))
		if err != nil || again != q {
			t.Fatalf("round trip of %q via %q: %+v, %v; want %+v", line, FormatQIND(q), again, err, q)
		}
	})
}

func FuzzParseQFUPL(f *testing.F) {
	addLines(f, "qfupl.txt")
	f.Fuzz(func(t *testing.T, line string) {
		size, sum, err := ParseQFUPL(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseQFUPL(%q) = %v, not ErrSyntax", line, err)
			}
			return
		}
		if size < 0 || size > MaxUpload {
			t.Fatalf("ParseQFUPL(%q) size %d out of range", line, size)
		}
		s2, sum2, err := ParseQFUPL(FormatQFUPL(size, sum))
		if err != nil || s2 != size || sum2 != sum {
			t.Fatalf("round trip of %q: %d, %x, %v; want %d, %x", line, s2, sum2, err, size, sum)
		}
	})
}
