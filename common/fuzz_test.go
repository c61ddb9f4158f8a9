package common

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"meterupd/internal/flashrec"
)

var update = flag.Bool("update", false, "rewrite testdata seed images")

func seedImage() []byte {
	m := flashrec.NewMem(24<<10, 4096, 16)
	c, _ := Open(m)
	c.WriteSettings(s1)
	c.Archive("A/1")
	c.WriteSettings(s2)
	for i := range 5 {
		c.AppendReading(Reading{Interval: uint64(i + 1), Wh: int64(i) * 10, Samples: 100})
	}
	return m.B
}

func TestSeedImage(t *testing.T) {
	p := filepath.Join("testdata", "common.img")
	want := seedImage()
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s differs from what this build writes (%v): the layout changed; regenerate with -update", p, err)
	}
}

// FuzzOpen: any partition content opens or fails cleanly; what it holds
// reads without panic; Open and the reads never write.
func FuzzOpen(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "common.img")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := flashrec.NewMem(24<<10, 4096, 16)
		copy(m.B, data)
		before := bytes.Clone(m.B)
		c, err := Open(m)
		if err == nil {
			c.Settings()
			c.Archived()
			c.Readings()
		}
		if !bytes.Equal(before, m.B) {
			t.Fatal("reading the partition wrote to it")
		}
	})
}
