package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/internal/flashrec"
)

// rec returns a typical legal record: a verified package, before and after
// identities with SHA-256 digests, a job origin.
func rec(i int) Record {
	d1 := sha256.Sum256([]byte(fmt.Sprint("before", i)))
	d2 := sha256.Sum256([]byte(fmt.Sprint("after", i)))
	kinds := []Kind{KindVerified, KindActivated, KindCommitted}
	return Record{
		Kind: kinds[i%len(kinds)], UnixMilli: 1_780_000_000_000 + int64(i)*1000, ClockValid: i%5 != 4,
		Origin: Origin{Kind: "job", ID: fmt.Sprintf("job-2026-11-%04d", i)},
		Before: Identity{Slot: "A", Version: "1.4.2", Digest: d1[:]},
		After:  Identity{Slot: "B", Version: "1.5.0", Digest: d2[:]},
	}
}

func mustAppend(t testing.TB, l *Log, r Record) Record {
	t.Helper()
	got, err := l.Append(r)
	if err != nil {
		t.Fatalf("Append(%d): %v", r.Seq, err)
	}
	return got
}

func TestAppendReopenVerify(t *testing.T) {
	for _, ws := range []int64{1, 16, 4096} {
		t.Run(fmt.Sprint("ws", ws), func(t *testing.T) {
			m := flashrec.NewMem(64<<10, 4096, ws)
			l, err := Open(m)
			if err != nil {
				t.Fatal(err)
			}
			if r := l.Verify(); !r.OK() || r.Records != 0 {
				t.Fatalf("empty log: %+v", r)
			}
			var want []Record
			for i := range 5 {
				want = append(want, mustAppend(t, l, rec(i)))
			}
			l2, err := Open(m)
			if err != nil {
				t.Fatal(err)
			}
			got := l2.Records()
			if len(got) != len(want) {
				t.Fatalf("Records() = %d records, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Seq != uint64(i+1) || got[i].Kind != want[i].Kind || got[i].Origin != want[i].Origin || !bytes.Equal(got[i].After.Digest, want[i].After.Digest) {
					t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			rep := l2.Verify()
			if !rep.OK() || rep.Records != 5 || rep.HeadSeq != 5 || rep.TornGaps != 0 || rep.TornTail {
				t.Errorf("Verify() = %+v, want 5 records, chain intact", rep)
			}
		})
	}
}

func TestAlteredRecordFailsVerify(t *testing.T) {
	build := func(t *testing.T) (*flashrec.Mem, []flashrec.Frame) {
		m := flashrec.NewMem(64<<10, 4096, 16)
		l, err := Open(m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			mustAppend(t, l, rec(i))
		}
		return m, l.s.Frames
	}
	tests := []struct {
		name  string
		alter func(m *flashrec.Mem, fr []flashrec.Frame)
		want  uint64 // seq of the first broken link
	}{
		{"bit flip in payload of record 3", func(m *flashrec.Mem, fr []flashrec.Frame) {
			m.B[fr[2].Off+flashrec.HeaderSize+10] ^= 0x04
		}, 4},
		{"record 2 rewritten with valid CRCs", func(m *flashrec.Mem, fr []flashrec.Frame) {
			r, _ := DecodeRecord(fr[1].Payload)
			r.After.Version = "6.6.6" // a forger's edit, framed properly
			p, _ := r.encode()
			f := flashrec.Encode(legalMagic, Version, 2, p, 16)
			copy(m.B[fr[1].Off:], f)
		}, 3},
		{"record 4 removed (erased)", func(m *flashrec.Mem, fr []flashrec.Frame) {
			for i := fr[3].Off; i < fr[3].Off+fr[3].Len; i++ {
				m.B[i] = 0xFF
			}
		}, 5},
		{"first record's sequence changed", func(m *flashrec.Mem, fr []flashrec.Frame) {
			r, _ := DecodeRecord(fr[0].Payload)
			p, _ := r.encode()
			copy(m.B[fr[0].Off:], flashrec.Encode(legalMagic, Version, 7, p, 16))
		}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fr := build(t)
			tt.alter(m, fr)
			rep, err := VerifyFlash(m)
			if err != nil {
				t.Fatalf("VerifyFlash: %v", err)
			}
			if rep.OK() || rep.Break.Seq != tt.want {
				t.Errorf("VerifyFlash() break = %+v, want first broken link at seq %d", rep.Break, tt.want)
			}
		})
	}
}

func TestFullRefusesAndChangesNothing(t *testing.T) {
	for _, ws := range []int64{1, 4096} {
		t.Run(fmt.Sprint("ws", ws), func(t *testing.T) {
			m := flashrec.NewMem(32<<10, 4096, ws)
			l, err := Open(m)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for ; ; n++ {
				_, err := l.Append(rec(n))
				if errors.Is(err, ErrFull) {
					break
				}
				if err != nil {
					t.Fatalf("Append %d: %v", n, err)
				}
				if n > 10000 {
					t.Fatal("never full")
				}
			}
			before := bytes.Clone(m.B)
			if _, err := l.Append(rec(n)); !errors.Is(err, ErrFull) {
				t.Fatalf("Append on a full log = %v, want ErrFull", err)
			}
			if !bytes.Equal(m.B, before) {
				t.Error("a refused Append changed the partition")
			}
			if rep := l.Verify(); !rep.OK() || rep.Records != n {
				t.Errorf("Verify() = %+v, want %d records, intact", rep, n)
			}
			if l.Remaining() != 0 {
				t.Errorf("Remaining() = %d on a full log", l.Remaining())
			}
			if ws == 4096 && n != 8 {
				t.Errorf("32 KiB of 4 KiB pages held %d records, want 8 (one per page)", n)
			}
		})
	}
}

func TestOpenRejectsForeignKeepsTornFirst(t *testing.T) {
	m := flashrec.NewMem(16<<10, 4096, 16)
	copy(m.B, []byte("not an audit log at all"))
	if _, err := Open(m); !errors.Is(err, ErrForeign) {
		t.Errorf("Open(foreign) = %v, want ErrForeign", err)
	}
	// A first record torn after 20 bytes: an empty log that takes records.
	m = flashrec.NewMem(16<<10, 4096, 16)
	p, _ := (&Record{Kind: KindVerified, Prev: make([]byte, 32)}).encode()
	copy(m.B, flashrec.Encode(legalMagic, Version, 1, p, 16)[:20])
	l, err := Open(m)
	if err != nil {
		t.Fatalf("Open(torn first record) = %v", err)
	}
	mustAppend(t, l, rec(0))
	rep := l.Verify()
	if !rep.OK() || rep.Records != 1 || rep.TornGaps != 1 {
		t.Errorf("Verify() = %+v, want 1 record after 1 torn gap", rep)
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	m := flashrec.NewMem(16<<10, 4096, 16)
	l, _ := Open(m)
	big := string(bytes.Repeat([]byte("x"), MaxText+1))
	for _, r := range []Record{{}, {Kind: KindVerified, Detail: big}, {Kind: KindVerified, Origin: Origin{ID: "\xff"}}, {Kind: KindVerified, After: Identity{Digest: make([]byte, 65)}}} {
		if _, err := l.Append(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("Append(%.40v) = %v, want ErrInvalid", r, err)
		}
	}
	if !bytes.Equal(m.B, flashrec.NewMem(16<<10, 4096, 16).B) {
		t.Error("a refused Append changed the partition")
	}
}

// TestPowerCutEveryAppendOp cuts the power at every flash operation of a
// run of appends on the sim board, in every cut mode (and many tears), and
// checks after each cut: the log opens, the chain holds, every
// acknowledged record is there, and appending goes on with an intact chain.
func TestPowerCutEveryAppendOp(t *testing.T) {
	g := sim.Geometry{EraseSize: 4096, WriteSize: 16, SlotSize: 64 << 10, JournalSize: 16 << 10, CommonSize: 16 << 10, Attempts: 3}
	const pre, run = 2, 4
	cuts := 0
	for _, mode := range []sim.CutMode{sim.CutBefore, sim.CutAfter, sim.CutTorn} {
		seeds := 1
		if mode == sim.CutTorn {
			seeds = 12
		}
		for seed := range seeds {
			for cut := int64(1); cut <= run; cut++ {
				dir := filepath.Join(t.TempDir(), "node")
				if err := sim.Create(dir, g); err != nil {
					t.Fatal(err)
				}
				b, _ := sim.Open(dir)
				f, _ := b.Partition(hw.PartAudit)
				l, err := Open(f)
				if err != nil {
					t.Fatal(err)
				}
				for i := range pre {
					mustAppend(t, l, rec(i))
				}
				b.Close()

				fa := &sim.Faults{CutAt: cut, Mode: mode, Rand: rand.New(rand.NewPCG(uint64(seed), uint64(cut)))}
				b, _ = sim.Open(dir, sim.WithFaults(fa))
				f, _ = b.Partition(hw.PartAudit)
				l, err = Open(f)
				if err != nil {
					t.Fatal(err)
				}
				acked := pre
				for i := pre; i < pre+run; i++ {
					if _, err := l.Append(rec(i)); err != nil {
						if !errors.Is(err, sim.ErrPowerCut) {
							t.Fatalf("cut %d %v: Append: %v", cut, mode, err)
						}
						break
					}
					acked++
				}
				b.Close()
				cuts++

				b, _ = sim.Open(dir)
				f, _ = b.Partition(hw.PartAudit)
				l, err = Open(f)
				if err != nil {
					t.Fatalf("cut %d %v seed %d: Open after cut: %v", cut, mode, seed, err)
				}
				rep := l.Verify()
				if !rep.OK() || rep.Records < acked || rep.Records > acked+1 {
					t.Fatalf("cut %d %v seed %d: Verify() = %+v, want intact with %d or %d records", cut, mode, seed, rep, acked, acked+1)
				}
				for i := range 2 {
					mustAppend(t, l, rec(100+i))
				}
				rep2, _ := VerifyFlash(f)
				if !rep2.OK() || rep2.Records != rep.Records+2 || rep2.TornTail {
					t.Fatalf("cut %d %v seed %d: after 2 more appends Verify() = %+v", cut, mode, seed, rep2)
				}
				b.Close()
			}
		}
	}
	t.Logf("%d power cuts, every one recovered with an intact chain", cuts)
}

// TestSizing measures how many typical records fit the sim's audit
// partition (sim.AuditSize) at two program units; docs/metering.md quotes
// the figures this logs.
func TestSizing(t *testing.T) {
	for _, tc := range []struct {
		ws   int64
		want int // lower bound
	}{{4096, 256}, {1, 3000}} {
		m := flashrec.NewMem(sim.AuditSize, 64<<10, tc.ws)
		l, _ := Open(m)
		n := 0
		for {
			if _, err := l.Append(rec(n)); err != nil {
				if !errors.Is(err, ErrFull) {
					t.Fatal(err)
				}
				break
			}
			n++
		}
		p, _ := l.Records()[0].encode()
		t.Logf("audit sizing: partition=%d write_unit=%d record_payload=%d records=%d", sim.AuditSize, tc.ws, len(p), n)
		if n < tc.want {
			t.Errorf("%d-byte partition, write unit %d: %d records, want at least %d", sim.AuditSize, tc.ws, n, tc.want)
		}
	}
}

func TestOpLogOverwritesOldest(t *testing.T) {
	m := flashrec.NewMem(4*4096, 4096, 256)
	o, err := OpenOpLog(m)
	if err != nil {
		t.Fatal(err)
	}
	least, most := o.Capacity(100)
	for i := range 1000 {
		if err := o.Append(Event{Kind: OpLoginFailed, UnixMilli: int64(i), Origin: Origin{Kind: "optical"}, Detail: fmt.Sprint("attempt ", i)}); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	o2, _ := OpenOpLog(m)
	ev := o2.Events()
	if int64(len(ev)) < least || int64(len(ev)) > most {
		t.Errorf("retained %d events, want %d..%d", len(ev), least, most)
	}
	if last := ev[len(ev)-1]; last.Seq != 1000 || last.UnixMilli != 999 {
		t.Errorf("newest event = %+v, want seq 1000", last)
	}
	for i := 1; i < len(ev); i++ {
		if ev[i].Seq != ev[i-1].Seq+1 {
			t.Fatalf("events not contiguous at %d: %d after %d", i, ev[i].Seq, ev[i-1].Seq)
		}
	}
}

// TestOpLogFloodLeavesLegalLog: thousands of failed logins fill only the
// ring; the legal log on its own partition is byte-identical and takes
// records.
func TestOpLogFloodLeavesLegalLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	if err := sim.Create(dir, sim.Geometry{EraseSize: 4096, WriteSize: 16, SlotSize: 64 << 10, JournalSize: 16 << 10, CommonSize: 16 << 10, Attempts: 3}); err != nil {
		t.Fatal(err)
	}
	b, _ := sim.Open(dir)
	defer b.Close()
	af, _ := b.Partition(hw.PartAudit)
	of, _ := b.Partition(hw.PartOpLog)
	l, _ := Open(af)
	mustAppend(t, l, rec(0))
	before := make([]byte, af.Size())
	af.ReadAt(before, 0)
	o, err := OpenOpLog(of)
	if err != nil {
		t.Fatal(err)
	}
	for range 5000 {
		if err := o.Append(Event{Kind: OpLoginFailed, Origin: Origin{Kind: "optical"}}); err != nil {
			t.Fatal(err)
		}
	}
	after := make([]byte, af.Size())
	af.ReadAt(after, 0)
	if !bytes.Equal(before, after) {
		t.Fatal("operational events changed the legal log")
	}
	mustAppend(t, l, rec(1))
}

func TestWriteTextVerdict(t *testing.T) {
	m := flashrec.NewMem(16<<10, 4096, 16)
	l, _ := Open(m)
	for i := range 2 {
		mustAppend(t, l, rec(i))
	}
	var b bytes.Buffer
	if err := WriteText(&b, l.Records(), l.Verify()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"   1  2026-", "package-verified", "job:job-2026-11-0001", "A/1.4.2/", "chain: intact, 2 records"} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("WriteText output lacks %q:\n%s", want, out)
		}
	}
	m.B[l.s.Frames[0].Off+40] ^= 2
	rep, _ := VerifyFlash(m)
	if v := Verdict(rep); !bytes.Contains([]byte(v), []byte("BROKEN at record 2")) {
		t.Errorf("Verdict(altered) = %q", v)
	}
	b.Reset()
	if err := WriteJSON(&b, l.Records(), rep); err != nil || !bytes.Contains(b.Bytes(), []byte(`"break"`)) {
		t.Errorf("WriteJSON = %v:\n%s", err, b.String())
	}
}
