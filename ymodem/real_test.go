package ymodem

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"meterupd/internal/pty"
	"meterupd/internal/realtool"
)

// szTransfer runs Debian's sz (lrzsz) with args on the slave side of a
// real pseudo-terminal and Receive on the master side.
func szTransfer(t *testing.T, limit int64, args ...string) (got []byte, h Header, rerr error, szErr error, szOut string) {
	got, h, rerr, szErr, szOut, _ = szRecorded(t, limit, args...)
	return
}

// TestRealSzLineDamage puts a damaged line between the real sz and the
// receiver: a flipped bit, lost bytes, a sender killed mid-transfer.
func TestRealSzLineDamage(t *testing.T) {
	path, want := randomFile(t, t.TempDir(), "p.pkg", 50000)
	once := func(at int, f func(b []byte, i int) []byte) func(int, []byte) []byte {
		done := false
		return func(off int, b []byte) []byte {
			if done || off+len(b) <= at {
				return b
			}
			done = true
			return f(b, max(at-off, 0))
		}
	}
	t.Run("flipped bit is NAKed and resent", func(t *testing.T) {
		r := szRun(t, szCase{limit: 1 << 20, args: []string{"--ymodem", "-k", path},
			damage: once(20000, func(b []byte, i int) []byte { b[i] ^= 0x10; return b })})
		if r.err != nil || r.szErr != nil || !bytes.Equal(r.got, want) {
			t.Fatalf("Receive = %v, sz = %v, %d bytes; want the file (%s)", r.err, r.szErr, len(r.got), r.szOut)
		}
		if !strings.ContainsRune(r.answer, NAK) {
			t.Errorf("receiver never NAKed the damaged block")
		}
	})
	t.Run("lost bytes: block cut short is NAKed", func(t *testing.T) {
		r := szRun(t, szCase{limit: 1 << 20, args: []string{"--ymodem", "-k", path},
			damage: once(30000, func(b []byte, i int) []byte { return append(b[:i], b[min(i+40, len(b)):]...) })})
		if r.err != nil || r.szErr != nil || !bytes.Equal(r.got, want) {
			t.Fatalf("Receive = %v, sz = %v, %d bytes; want the file (%s)", r.err, r.szErr, len(r.got), r.szOut)
		}
	})
	t.Run("sender killed mid-way", func(t *testing.T) {
		big, _ := randomFile(t, t.TempDir(), "big.pkg", 4<<20)
		r := szRun(t, szCase{limit: 8 << 20, args: []string{"--ymodem", "-k", big},
			opt: Options{Timeout: 300 * time.Millisecond, MaxErrors: 3},
			onProgress: func(p Progress, sz *os.Process) {
				if p.Received > 0 {
					sz.Kill()
				}
			}})
		if !errors.Is(r.err, ErrTimeout) {
			t.Errorf("Receive = %v, want ErrTimeout", r.err)
		}
		if len(r.got) >= 4<<20 {
			t.Errorf("the whole file arrived before the kill: the test proves nothing")
		}
	})
}

// recorder keeps what the sender sent and the receiver answered, and
// damages the sender's bytes on their way when told to.
type recorder struct {
	*os.File
	damage       func(off int, b []byte) []byte
	off          int
	sent, answer bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.File.Read(p)
	r.sent.Write(p[:n])
	b := p[:n]
	if r.damage != nil && n > 0 {
		b = r.damage(r.off, bytes.Clone(b))
		copy(p, b)
	}
	r.off += n
	return len(b), err
}

func (r *recorder) Write(p []byte) (int, error) {
	r.answer.Write(p)
	return r.File.Write(p)
}

// blockKinds walks a recorded sender stream and counts the SOH and STX
// blocks whose CRC checks, and the bytes before the first one.
func blockKinds(b []byte) (soh, stx, before int) {
	before = -1
	for i := 0; i < len(b); i++ {
		size := map[byte]int{SOH: sohSize, STX: stxSize}[b[i]]
		if size == 0 || i+size+overhead > len(b) {
			continue
		}
		if _, _, err := ParseBlock(b[i : i+size+overhead]); err != nil {
			continue
		}
		if before < 0 {
			before = i
		}
		if size == sohSize {
			soh++
		} else {
			stx++
		}
		i += size + overhead - 1
	}
	return soh, stx, before
}

func szRecorded(t *testing.T, limit int64, args ...string) (got []byte, h Header, rerr error, szErr error, szOut string, sent []byte) {
	r := szRun(t, szCase{limit: limit, args: args})
	return r.got, r.h, r.err, r.szErr, r.szOut, r.sent
}

// szCase is one run of sz against Receive; damage, when set, may change
// the bytes the receiver reads (line damage between sz and the receiver);
// onProgress sees the sz process.
type szCase struct {
	limit      int64
	args       []string
	damage     func(off int, b []byte) []byte
	onProgress func(Progress, *os.Process)
	opt        Options
}

type szResult struct {
	got, sent     []byte
	h             Header
	err, szErr    error
	szOut, answer string
}

func szRun(t *testing.T, tc szCase) szResult {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminal tests need Linux")
	}
	sz := realtool.Need(t, "sz", "lrzsz")
	master, slavePath, slaveFD, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.CloseFD(slaveFD)
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, sz, tc.args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var last Progress
	rec := &recorder{File: master, damage: tc.damage}
	opt := tc.opt
	opt.Limit = tc.limit
	opt.StartInterval = 500 * time.Millisecond
	if opt.Timeout == 0 {
		opt.Timeout = 5 * time.Second
	}
	opt.Gap = 200 * time.Millisecond
	opt.Progress = func(p Progress) {
		last = p
		if tc.onProgress != nil {
			tc.onProgress(p, cmd.Process)
		}
	}
	var r szResult
	r.h, r.err = Receive(ctx, rec, &buf, opt)
	r.szErr = cmd.Wait()
	if r.err == nil && (last.Received != r.h.Size || last.Name != r.h.Name) {
		t.Errorf("last progress %+v, want %d bytes of %q", last, r.h.Size, r.h.Name)
	}
	r.got, r.szOut, r.sent, r.answer = buf.Bytes(), stderr.String(), rec.sent.Bytes(), rec.answer.String()
	return r
}

func randomFile(t *testing.T, dir, name string, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestRealSz sends with lrzsz's sz in its three ways a technician may
// call it: --ymodem (128-byte blocks), --ymodem -k (1K blocks, 128 at the
// end: mixed), and plain sz, which starts with ZMODEM's ZRQINIT and falls
// back to YMODEM on our 'C'.
func TestRealSz(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		size     int
		soh, stx bool // blocks of each kind seen
		preamble bool // ZMODEM's ZRQINIT before block 0
	}{
		{"ymodem-128", []string{"--ymodem"}, 3000, true, false, false},
		{"ymodem-1k-mixed", []string{"--ymodem", "-k"}, 70001, true, true, false},
		{"ymodem-1k-exact", []string{"--ymodem", "-k"}, 4096, true, true, false},
		{"plain-sz-zmodem-preamble", nil, 20000, true, true, true}, // falls back with 1K blocks
		{"empty-file", []string{"--ymodem"}, 0, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, want := randomFile(t, t.TempDir(), "pkg-"+tc.name+".bin", tc.size)
			got, h, err, szErr, szOut, sent := szRecorded(t, 1<<20, append(tc.args, path)...)
			soh, stx, before := blockKinds(sent)
			if (soh > 0) != tc.soh || (stx > 0) != tc.stx {
				t.Errorf("sz sent %d 128-byte and %d 1K blocks, want 128: %v, 1K: %v", soh, stx, tc.soh, tc.stx)
			}
			if zrq := bytes.Contains(sent[:max(before, 0)], []byte("**\x18B00")); zrq != tc.preamble {
				t.Errorf("ZRQINIT before block 0: %v, want %v (%q)", zrq, tc.preamble, sent[:max(before, 0)])
			}
			if err != nil {
				t.Fatalf("Receive = %v (sz: %v, %s)", err, szErr, szOut)
			}
			if szErr != nil {
				t.Errorf("sz exit: %v\n%s", szErr, szOut)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("received %d bytes, want the %d sent", len(got), len(want))
			}
			if h.Name != filepath.Base(path) || h.Size != int64(tc.size) || h.ModTime.IsZero() {
				t.Errorf("header %+v, want %q, %d bytes, a modification time", h, filepath.Base(path), tc.size)
			}
		})
	}
}

// TestRealSzRefusals: a batch of two files and a file over the limit are
// refused; sz sees the cancel and fails.
func TestRealSzRefusals(t *testing.T) {
	dir := t.TempDir()
	a, _ := randomFile(t, dir, "a.pkg", 5000)
	b, _ := randomFile(t, dir, "b.pkg", 5000)
	for _, tc := range []struct {
		name  string
		limit int64
		args  []string
		want  error
	}{
		{"two-files", 1 << 20, []string{"--ymodem", a, b}, ErrSecondFile},
		{"over-limit", 4999, []string{"--ymodem", "-k", a}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err, szErr, szOut := szTransfer(t, tc.limit, tc.args...)
			if !errors.Is(err, tc.want) {
				t.Errorf("Receive = %v, want %v", err, tc.want)
			}
			if szErr == nil {
				t.Errorf("sz exited 0 after the receiver canceled:\n%s", szOut)
			}
			if tc.want == ErrTooLarge && len(got) != 0 {
				t.Errorf("%d bytes written before the size was refused", len(got))
			}
			if !strings.Contains(strings.ToLower(szOut), "cancel") {
				t.Logf("sz said: %s", szOut)
			}
		})
	}
}
