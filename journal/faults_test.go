package journal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"meterupd/journal/internal/flashtest"
)

// openCopy opens the journal on a copy of f's content (as the next boot
// would see it) without disturbing f's armed faults, and checks that it
// loads want or alt.
func openCopy(t *testing.T, f *flashtest.Flash, want, alt state) {
	t.Helper()
	c := flashtest.New(f.Size(), f.EraseSize(), f.WriteSize(), 1)
	c.Load(f.Bytes())
	j, err := Open(c, Options{})
	if err != nil {
		t.Fatalf("Open(copy) = %v", err)
	}
	got := load(t, j)
	if !same(got, want) && !same(got, alt) {
		t.Fatalf("Open(copy) loads %d %q, want %d %q or %d %q", got.N, got.Slot, want.N, want.Slot, alt.N, alt.Slot)
	}
}

// commitAll commits sv(last.N+1, gen) … sv(to, gen), tolerating errors: after
// each failed Commit the journal must still hold the previous value in
// memory, and the flash must load the previous value or the failed one. It
// returns the last committed value and the number of failed commits.
func commitAll(t *testing.T, f *flashtest.Flash, j *Journal, last state, to, gen, pad int) (state, int) {
	t.Helper()
	failed := 0
	for i := last.N + 1; i <= to; i++ {
		v := sv(i, gen, pad)
		if err := j.Commit(v); err != nil {
			failed++
			if got := load(t, j); !same(got, last) {
				t.Fatalf("after failed Commit(%d): Load = %d, want %d", i, got.N, last.N)
			}
			openCopy(t, f, last, v)
			continue
		}
		last = v
	}
	if f.Violations != 0 {
		t.Fatalf("%d flash rule violations", f.Violations)
	}
	return last, failed
}

// TestIOErrorOnceAtEveryOp fails flash operation k once, k = 1…N: a commit
// either succeeds on another area or fails cleanly, and the journal goes on.
// RELIABILITY.md B.11.
func TestIOErrorOnceAtEveryOp(t *testing.T) {
	for _, g := range cutGeometries[:2] {
		t.Run(g.name, func(t *testing.T) {
			n := cleanOps(t, g.size, g.erase, g.write, g.nand, g.commits, g.pad)
			for k := 1; k <= n; k++ {
				f := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, uint64(k))
				j, err := Open(f, Options{})
				if err != nil {
					t.Fatal(err)
				}
				f.FailAt(k, false)
				last, _ := commitAll(t, f, j, sv(0, 0, g.pad), g.commits, 1, g.pad)
				if last.N != g.commits {
					// The failed commit was skipped; the last one must land.
					t.Fatalf("fail once at op %d: last committed %d, want %d", k, last.N, g.commits)
				}
				openCopy(t, f, last, last)
			}
		})
	}
}

// TestIOErrorPersistentThenCleared fails every operation from k on, then
// clears the fault: commits fail cleanly (ErrNoArea wrapping the I/O error),
// the journal keeps the last good record, and once the fault is gone commits
// work again. Also starting right after a power cut (fault during
// recovery). RELIABILITY.md B.6 (100 %), B.11.
func TestIOErrorPersistentThenCleared(t *testing.T) {
	g := cutGeometries[0]
	for _, afterCut := range []bool{false, true} {
		for pre := 0; pre <= g.commits; pre += 3 {
			t.Run(fmt.Sprintf("cut=%v/pre=%d", afterCut, pre), func(t *testing.T) {
				f := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, uint64(pre))
				j, err := Open(f, Options{})
				if err != nil {
					t.Fatal(err)
				}
				last := sv(0, 0, g.pad)
				if afterCut {
					f.CutAt(1+pre%37, flashtest.CutTorn)
					committed, inflight, _ := workload(j, last, g.commits, 1, g.pad)
					j, last = reboot(t, f, committed, inflight)
				}
				last, _ = commitAll(t, f, j, last, last.N+pre, 2, g.pad)
				// Every operation from the next one (or the one after) on fails.
				f.FailAt(f.Ops()+1+pre%2, true)
				last, failed := commitAll(t, f, j, last, last.N+10, 3, g.pad)
				if failed < 9 {
					t.Fatalf("persistent fault: %d of 10 commits failed, want at least 9", failed)
				}
				before := f.Bytes()
				err = j.Commit(sv(999, 3, g.pad))
				if !errors.Is(err, flashtest.ErrIO) || !errors.Is(err, ErrNoArea) {
					t.Fatalf("Commit under persistent fault = %v, want ErrNoArea wrapping ErrIO", err)
				}
				if !bytes.Equal(before, f.Bytes()) {
					t.Fatal("a commit that failed with I/O errors changed the flash")
				}
				f.FailAt(0, false)
				last, failed = commitAll(t, f, j, last, last.N+g.commits/2, 4, g.pad)
				if failed != 0 {
					t.Fatalf("%d commits failed after the fault cleared", failed)
				}
				openCopy(t, f, last, last)
			})
		}
	}
}

// TestIOErrorRandom50 fails half of all flash operations at random.
// RELIABILITY.md B.6 (50 %).
func TestIOErrorRandom50(t *testing.T) {
	for _, g := range cutGeometries {
		t.Run(g.name, func(t *testing.T) {
			f := formatted(t, g.size, g.erase, g.write, g.nand, g.pad, 5)
			j, err := Open(f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			f.FailRandom(0.5)
			last, failed := commitAll(t, f, j, sv(0, 0, g.pad), 3*g.commits, 1, g.pad)
			t.Logf("%d of %d commits failed at a 50%% I/O error rate", failed, 3*g.commits)
			if failed == 0 || failed == 3*g.commits {
				t.Errorf("failed commits = %d of %d: fault injection not exercised", failed, 3*g.commits)
			}
			f.FailRandom(0)
			openCopy(t, f, last, last)
		})
	}
}

func TestReadErrorIsReported(t *testing.T) {
	f := formatted(t, 8*4096, 4096, 1, false, 10, 1)
	j, err := Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.FailReads(true)
	if err := j.Commit(st(1, 10)); !errors.Is(err, flashtest.ErrIO) {
		t.Errorf("Commit with failing reads = %v, want ErrIO", err)
	}
	if _, err := Open(f, Options{}); !errors.Is(err, flashtest.ErrIO) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrEmpty) {
		t.Errorf("Open with failing reads = %v, want ErrIO and no verdict on the content", err)
	}
	if _, err := j.Records(); !errors.Is(err, flashtest.ErrIO) {
		t.Errorf("Records with failing reads = %v, want ErrIO", err)
	}
	f.FailReads(false)
	if got := load(t, j); got.N != 0 {
		t.Errorf("Load = %d, want 0", got.N)
	}
}

// TestBadBlocks marks each erase block bad in each mode (program error, erase
// error, silent program, silent erase), before or after provisioning. With
// four areas every commit is relocated and lands; with two, a commit that
// needs the bad area fails cleanly and the last good record stays.
// RELIABILITY.md B.12.
func TestBadBlocks(t *testing.T) {
	modes := []flashtest.BadMode{flashtest.BadProgram, flashtest.BadErase, flashtest.BadSilentProgram, flashtest.BadSilentErase}
	for _, areas := range []int{2, 4} {
		blocks := int64(4 * areas) // 4 KiB blocks, 16 KiB areas
		for _, m := range modes {
			for _, beforeFormat := range []bool{false, true} {
				for b := int64(0); b < blocks; b++ {
					t.Run(fmt.Sprintf("areas%d/mode%d/before%v/block%d", areas, m, beforeFormat, b), func(t *testing.T) {
						f := flashtest.New(blocks*4096, 4096, 4, uint64(b))
						if beforeFormat {
							f.SetBad(b*4096, m)
						}
						if _, err := Format(f, sv(0, 0, 300), Options{}); err != nil {
							t.Fatalf("Format: %v", err)
						}
						f.SetBad(b*4096, m)
						j, err := Open(f, Options{})
						if err != nil {
							t.Fatal(err)
						}
						last, failed := commitAll(t, f, j, sv(0, 0, 300), 200, 1, 300)
						if areas > 2 && failed != 0 {
							t.Errorf("%d of 200 commits failed with %d areas and one bad block", failed, areas)
						}
						openCopy(t, f, last, last)
					})
				}
			}
		}
	}
}

// TestBitFlipInRecordDetected flips every bit of the newest record in turn:
// the record is rejected and the previous one loads. RELIABILITY.md B.20.
func TestBitFlipInRecordDetected(t *testing.T) {
	for _, ws := range []int64{1, 16} {
		f := flashtest.New(8*4096, 4096, ws, 1)
		j, err := Format(f, sv(1, 0, 3), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Commit(sv(2, 0, 3)); err != nil {
			t.Fatal(err)
		}
		rs, err := j.Records()
		if err != nil {
			t.Fatal(err)
		}
		newest := rs[len(rs)-1]
		n := j.g.pad(HeaderSize + int64(len(newest.Data)))
		for off := newest.Offset; off < newest.Offset+n; off++ {
			for bit := uint(0); bit < 8; bit++ {
				f.FlipBit(off, bit)
				j2, err := Open(f, Options{})
				if err != nil {
					t.Fatalf("ws %d: flip bit %d at %d: Open = %v", ws, bit, off, err)
				}
				if got := load(t, j2); got.N != 1 {
					t.Fatalf("ws %d: flip bit %d at %d: Load = %d, want 1 (the damaged record 2 must be rejected)", ws, bit, off, got.N)
				}
				f.FlipBit(off, bit)
			}
		}
		// The only record damaged: corrupt, not foreign, not empty.
		first := rs[0]
		for off := first.Offset; off < first.Offset+HeaderSize; off++ {
			for bit := uint(0); bit < 8; bit++ {
				img := f.Bytes()
				g := flashtest.New(f.Size(), f.EraseSize(), f.WriteSize(), 1)
				for i := range img {
					if int64(i) >= newest.Offset {
						img[i] = 0xFF
					}
				}
				img[off] ^= 1 << bit
				g.Load(img)
				if _, err := Open(g, Options{}); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ws %d: only record, flip bit %d at %d: Open = %v, want ErrCorrupt", ws, bit, off, err)
				}
			}
		}
	}
}

// TestErasedHeaderIsEndOfLog: an erased header ends an area's log and is
// never read as a length; bytes that are not erased after it make the area's
// tail untrusted, so the next commit moves to another area instead of
// programming over them. RELIABILITY.md B.8.
func TestErasedHeaderIsEndOfLog(t *testing.T) {
	f := flashtest.New(8*4096, 4096, 1, 1)
	j, err := Format(f, sv(1, 0, 10), Options{})
	if err != nil {
		t.Fatal(err)
	}
	end := j.end
	// Stray programmed bytes well after the erased header that ends the log.
	if _, err := f.WriteAt([]byte{0x00, 0x12, 0x00, 0x00}, end+100); err != nil {
		t.Fatal(err)
	}
	j, err = Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Stats().TornRecords; got != 1 {
		t.Errorf("TornRecords = %d, want 1", got)
	}
	if err := j.Commit(sv(2, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if j.cur == 0 {
		t.Errorf("commit appended to an area whose tail is not erased")
	}
	if f.Violations != 0 {
		t.Errorf("%d flash rule violations", f.Violations)
	}
	j, err = Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, j); got.N != 2 {
		t.Errorf("Load = %d, want 2", got.N)
	}
}

// TestSeqNeverReusedAfterDamagedRecord: when the newest record reads damaged
// (say, a marginal cell) the journal falls back to the previous one, and the
// next commit takes a fresh sequence number, so the damaged record can never
// outrank it if it later reads valid again.
func TestSeqNeverReusedAfterDamagedRecord(t *testing.T) {
	f := flashtest.New(8*4096, 4096, 1, 1)
	j, err := Format(f, sv(1, 0, 5), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		if err := j.Commit(sv(i, 0, 5)); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := j.Records()
	if err != nil {
		t.Fatal(err)
	}
	bad := rs[len(rs)-1].Offset + HeaderSize + 1
	f.FlipBit(bad, 0)
	j, err = Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, j); got.N != 2 || j.Seq() != 2 {
		t.Fatalf("damaged newest: Load = %d seq %d, want 2 seq 2", got.N, j.Seq())
	}
	next := sv(9, 1, 5)
	if err := j.Commit(next); err != nil {
		t.Fatal(err)
	}
	if j.Seq() <= 3 {
		t.Errorf("commit after a damaged record 3 took seq %d, want > 3", j.Seq())
	}
	f.FlipBit(bad, 0) // the cell reads right again
	j, err = Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, j); !same(got, next) {
		t.Errorf("Load = %d %q, want the newer commit %d %q", got.N, got.Slot, next.N, next.Slot)
	}
}
