package ymodem

import (
	"bytes"
	"context"
	"flag"
	goldenfile "meterupd/internal/golden"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata seed streams")

// seedStreams are sender streams (what a sender puts on the line), the
// fuzz targets' seed corpus in testdata/: kept in step with the code by
// TestSeedStreams (go test -run SeedStreams -update rewrites them).
func seedStreams() map[string][]byte {
	join := func(parts ...[][]byte) []byte { return bytes.Join(cat(parts...), nil) }
	blocks := fileBlocks()
	return map[string][]byte{
		"ok-mixed-blocks.bin":     join(one(header("p.pkg", 1500)), blocks, one(eot, eot, end0)),
		"zmodem-preamble.bin":     join(one(zrqinit, header("p.pkg", 1500)), blocks, one(eot, eot, end0)),
		"header-4gib.bin":         header("big.pkg", 4<<30),
		"second-file.bin":         join(one(header("p.pkg", 1500)), blocks, one(eot, eot, header("q.pkg", 10))),
		"bad-crc.bin":             join(one(header("p.pkg", 1500), corrupt(blocks[0], 700)), blocks, one(eot, eot, end0)),
		"skipped-block.bin":       join(one(header("p.pkg", 1500), blocks[0], blocks[2])),
		"sender-cancel.bin":       join(one(header("p.pkg", 1500), blocks[0], []byte{CAN, CAN})),
		"empty-file.bin":          join(one(header("e", 0), eot, eot, end0)),
		"header-without-size.bin": block(0, []byte("p.pkg\x00"), sohSize),
	}
}

func TestSeedStreams(t *testing.T) {
	goldenfile.Check(t, "testdata", seedStreams(), *update)
}

func seeds(f *testing.F) [][]byte {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed streams in testdata: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzReceive feeds a sender stream to the receiver: it never panics,
// never writes more than the limit, and succeeds only with exactly the
// announced size written.
func FuzzReceive(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 4096
		s := &script{now: time.Unix(0, 0), chunks: [][]byte{stream}}
		var out bytes.Buffer
		h, err := Receive(context.Background(), s, &out, Options{Limit: limit, Now: s.Now})
		if out.Len() > limit {
			t.Fatalf("wrote %d bytes, limit %d", out.Len(), limit)
		}
		if err == nil && int64(out.Len()) != h.Size {
			t.Fatalf("success with %d bytes written, %d announced", out.Len(), h.Size)
		}
	})
}

// FuzzParseBlock: a block that parses re-encodes to the same bytes, and
// block 0's parser never panics on its data.
func FuzzParseBlock(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
		if i := bytes.IndexAny(b, "\x01\x02"); i >= 0 && i+sohSize+overhead <= len(b) {
			f.Add(b[i : i+sohSize+overhead])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		num, data, err := ParseBlock(b)
		if err != nil {
			return
		}
		enc := []byte{b[0], num, ^num}
		enc = append(enc, data...)
		crc := CRC16(data)
		enc = append(enc, byte(crc>>8), byte(crc))
		if !bytes.Equal(enc, b) {
			t.Fatalf("block %d re-encodes differently", num)
		}
		if h, ok, err := ParseHeader(data); err == nil && ok && (h.Size < 0 || h.Name == "") {
			t.Fatalf("ParseHeader = %+v", h)
		}
	})
}
