package journal

import (
	"fmt"
	"testing"

	"meterupd/journal/internal/flashtest"
)

// costGeometries: where the cost figures are measured.
var costGeometries = []struct {
	name               string
	size, erase, write int64
}{
	{"nor-64KiB-blocks-2areas", 2 * 64 << 10, 64 << 10, 1},
	{"nor-4KiB-blocks-16KiB-areas", 16 * 4096, 4096, 1},
	{"nand-128KiB-blocks-2KiB-pages", 4 * 128 << 10, 128 << 10, 2048},
}

// BenchmarkCommit300B commits ~300-byte records and reports the flash
// operations per commit. Erases are erase blocks; the figure per 100 commits
// is 100 × erases/commit.
func BenchmarkCommit300B(b *testing.B) {
	for _, g := range costGeometries {
		b.Run(g.name, func(b *testing.B) {
			f := flashtest.New(g.size, g.erase, g.write, 1)
			j, err := Format(f, st(0, 280), Options{})
			if err != nil {
				b.Fatal(err)
			}
			e0, p0, r0 := f.Erases, f.Programs, f.ReadBytes
			n := 0
			for b.Loop() {
				n++
				if err := j.Commit(st(n, 280)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(f.Erases-e0)/float64(n), "erases/commit")
			b.ReportMetric(float64(f.Programs-p0)/float64(n), "programs/commit")
			b.ReportMetric(float64(f.ReadBytes-r0)/float64(n), "readB/commit")
		})
	}
}

// TestCostPer100Commits measures what the journal costs per 100 commits of
// a ~300-byte record (about one update cycle's worth of checkpoints), in
// steady state, and checks the wear bound: one program per commit, and an
// erase only when an area is full.
func TestCostPer100Commits(t *testing.T) {
	for _, g := range costGeometries {
		t.Run(g.name, func(t *testing.T) {
			f := flashtest.New(g.size, g.erase, g.write, 1)
			j, err := Format(f, st(0, 280), Options{})
			if err != nil {
				t.Fatal(err)
			}
			const total = 5000
			e0, p0 := f.Erases, f.Programs
			for i := 1; i <= total; i++ {
				if err := j.Commit(st(i, 280)); err != nil {
					t.Fatal(err)
				}
			}
			rec := j.g.pad(HeaderSize + int64(len(j.data)))
			perArea := j.g.areaSize / rec
			erases, programs := f.Erases-e0, f.Programs-p0
			if programs != total {
				t.Errorf("%d commits: %d programs, want %d", total, programs, total)
			}
			// Records 0…total fill areas in turn; each new area is one switch.
			switches := total / perArea
			if want := switches * j.g.blocks; erases != want {
				t.Errorf("%d commits: %d block erases, want %d (%d switches of %d blocks)", total, erases, want, switches, j.g.blocks)
			}
			t.Logf("%s: record %d B padded to %d B, %d records per %d KiB area: per 100 commits %.2f block erases (%s of an area), %d programs",
				g.name, len(j.data), rec, perArea, j.g.areaSize>>10,
				float64(erases)*100/total, fmt.Sprintf("%.2f", float64(erases)*100/total/float64(j.g.blocks)), programs*100/total)
		})
	}
}
