package audit

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"meterupd/internal/flashrec"
)

var update = flag.Bool("update", false, "rewrite testdata seed images")

// hostile are payloads a damaged or forged record could carry.
var hostile = [][]byte{
	append(bytes.Repeat([]byte{0x81}, 100), 0x00),                                     // deep nesting
	{0x9B, 0x00, 0x00, 0x42, 0xFA, 0x42, 0xFA, 0x42, 0xFA, 0x42},                      // 2^40-element array claim
	{0xBA, 0xFF, 0xFF, 0xFF, 0xFF},                                                    // 2^32-pair map claim
	{0xA2, 0x01, 0x61, 'a', 0x01, 0x61, 'b'},                                          // duplicate key
	{0xBF, 0x01, 0x61, 'a', 0xFF},                                                     // indefinite map
	{0xC1, 0x1A, 0x00, 0x00, 0x00, 0x01},                                              // tag
	{0xA1, 0x01, 0x61, 0xFF},                                                          // bad UTF-8
	{0xA1, 0x01, 0x5A, 0x7F, 0xFF, 0xFF, 0xFF},                                        // byte string past end
	{0xA2, 0x01, 0x6A, 'c', 'o', 'm', 'm', 'i', 't', 't', 'e', 'd', 0x08, 0x41, 0x00}, // short prev hash
}

func TestDecodeRecordRejectsHostile(t *testing.T) {
	for i, h := range hostile {
		if _, err := DecodeRecord(h); err == nil {
			t.Errorf("DecodeRecord(hostile %d % x) = nil error", i, h)
		}
	}
	if _, err := DecodeRecord(make([]byte, MaxPayload+1)); err == nil {
		t.Error("DecodeRecord(oversized) = nil error")
	}
}

// FuzzDecodeRecord: the decoder never panics, and what it accepts encodes
// back to a record that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	for i := range 3 {
		r := rec(i)
		r.Prev = make([]byte, 32)
		p, _ := r.encode()
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			return
		}
		p, err := r.encode()
		if err != nil {
			t.Fatalf("encode(decoded) = %v", err)
		}
		r2, err := DecodeRecord(p)
		if err != nil || r2.Kind != r.Kind || r2.Origin != r.Origin || !bytes.Equal(r2.Prev, r.Prev) {
			t.Fatalf("round trip: %+v, %v; want %+v", r2, err, r)
		}
	})
}

// FuzzOpenVerify: any partition content opens or fails with an error,
// Verify never panics, and Open never writes.
func FuzzOpenVerify(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.img"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := flashrec.NewMem(8<<10, 4096, 16)
		copy(m.B, data)
		before := bytes.Clone(m.B)
		l, err := Open(m)
		if err == nil {
			l.Verify()
			l.Records()
		}
		if !bytes.Equal(before, m.B) {
			t.Fatal("Open wrote to the partition")
		}
	})
}

// TestFuzzCorpus writes (with -update) and checks the checked-in seed
// corpus of FuzzDecodeRecord: records as Append encodes them.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
	for i := range 3 {
		r := rec(i)
		r.Prev = make([]byte, 32)
		if i == 2 {
			r.Detail, r.Origin = "deferral expired after 72h", Origin{Kind: "technician", ID: "T-0042"}
		}
		p, _ := r.encode()
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(p)) + ")\n"
		name := filepath.Join(dir, fmt.Sprintf("record-%d", i))
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := os.ReadFile(name); err != nil || string(got) != want {
			t.Errorf("%s differs from what this build encodes (%v): regenerate with -update", name, err)
		}
	}
}

// TestWriteSeedImages regenerates testdata/*.img with -update.
func TestWriteSeedImages(t *testing.T) {
	imgs := map[string]func(m *flashrec.Mem){
		"three-records.img": func(m *flashrec.Mem) {
			l, _ := Open(m)
			for i := range 3 {
				l.Append(rec(i))
			}
		},
		"torn-tail.img": func(m *flashrec.Mem) {
			l, _ := Open(m)
			l.Append(rec(0))
			p, _ := (&Record{Kind: KindActivated, Prev: make([]byte, 32)}).encode()
			copy(m.B[l.s.DirtyEnd:], flashrec.Encode(legalMagic, Version, 2, p, 16)[:40])
		},
		"altered.img": func(m *flashrec.Mem) {
			l, _ := Open(m)
			for i := range 3 {
				l.Append(rec(i))
			}
			m.B[l.s.Frames[1].Off+40] ^= 1
		},
	}
	for name, mk := range imgs {
		m := flashrec.NewMem(8<<10, 4096, 16)
		mk(m)
		p := filepath.Join("testdata", name)
		if *update {
			os.MkdirAll("testdata", 0o755)
			if err := os.WriteFile(p, m.B[:2048], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (regenerate with -update)", err)
		}
		// The images are deterministic: a change means the format changed.
		if !bytes.Equal(got, m.B[:2048]) {
			t.Errorf("%s differs from what this build writes: the record format changed", name)
		}
	}
}
