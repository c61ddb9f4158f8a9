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

// recorder keeps what the sender sent.
type recorder struct {
	*os.File
	sent bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.File.Read(p)
	r.sent.Write(p[:n])
	return n, err
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
	cmd := exec.CommandContext(ctx, sz, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var last Progress
	rec := &recorder{File: master}
	h, rerr = Receive(ctx, rec, &buf, Options{
		Limit: limit, StartInterval: 500 * time.Millisecond, Timeout: 5 * time.Second, Quiet: 200 * time.Millisecond,
		Progress: func(p Progress) { last = p },
	})
	szErr = cmd.Wait()
	if rerr == nil && (last.Received != h.Size || last.Name != h.Name) {
		t.Errorf("last progress %+v, want %d bytes of %q", last, h.Size, h.Name)
	}
	return buf.Bytes(), h, rerr, szErr, stderr.String(), rec.sent.Bytes()
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
