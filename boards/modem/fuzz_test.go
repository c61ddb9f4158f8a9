package modem

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func addLines(f *testing.F, name string) {
	for _, l := range testLines(f, name) {
		f.Add(l)
	}
}

func FuzzParseCSQ(f *testing.F) {
	addLines(f, "csq.txt")
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseCSQ(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseCSQ(%q) = %v, not ErrSyntax", line, err)
			}
			return
		}
		if dbm, ok := s.DBm(); ok && (dbm < -113 || dbm > -51) {
			t.Fatalf("ParseCSQ(%q).DBm() = %d", line, dbm)
		}
		again, err := ParseCSQ(FormatCSQ(s))
		if err != nil || again != s {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", line, again, err, s)
		}
	})
}

func FuzzParseReg(f *testing.F) {
	addLines(f, "reg.txt")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseReg(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseReg(%q) = %v, not ErrSyntax", line, err)
			}
			return
		}
		if r.Stat < 0 || r.Stat > 11 || r.Mode < -1 || r.Mode > 5 || r.AcT < -1 || r.AcT > 15 {
			t.Fatalf("ParseReg(%q) = %+v: out of range", line, r)
		}
		again, err := ParseReg(FormatReg(r))
		if err != nil || again != r {
			t.Fatalf("round trip of %q via %q: %+v, %v; want %+v", line, FormatReg(r), again, err, r)
		}
	})
}

func FuzzParseCMEError(f *testing.F) {
	addLines(f, "cme.txt")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseCMEError(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseCMEError(%q) = %v, not ErrSyntax", line, err)
			}
			return
		}
		if e.Code < -1 || e.Code > 65535 || !errors.Is(e, ErrCommandFailed) {
			t.Fatalf("ParseCMEError(%q) = %+v", line, e)
		}
		if final, ferr := finalResult(line); !final || ferr == nil {
			t.Fatalf("finalResult(%q) = %v, %v; want a failure", line, final, ferr)
		}
	})
}

func addStreams(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "stream", "*.bin"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no stream seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzSplitter(f *testing.F) {
	addStreams(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		toks, dropped := split(in)
		if dropped < 0 || dropped > len(in) {
			t.Fatalf("dropped %d of %d bytes", dropped, len(in))
		}
		var lines []string
		for _, tok := range toks {
			if tok.Prompt {
				continue
			}
			l := tok.Line
			if l == "" || len(l) > MaxLine || strings.HasSuffix(l, " ") || strings.HasPrefix(l, "> ") {
				t.Fatalf("bad line %q", l)
			}
			for i := 0; i < len(l); i++ {
				if l[i] < 0x20 || l[i] > 0x7e {
					t.Fatalf("line %q has byte %#x", l, l[i])
				}
			}
			lines = append(lines, l)
		}
		// Round trip: the lines, framed again, split into themselves.
		var framed []byte
		for _, l := range lines {
			framed = append(framed, "\r\n"+l+"\r\n"...)
		}
		again, d := split(framed)
		if d != 0 || len(again) != len(lines) {
			t.Fatalf("re-split of %q: %d tokens, %d dropped; want %d lines", framed, len(again), d, len(lines))
		}
		for i, tok := range again {
			if tok.Prompt || tok.Line != lines[i] {
				t.Fatalf("re-split token %d = %+v, want %q", i, tok, lines[i])
			}
		}
	})
}

// scriptedPort answers every command write with a fixed byte stream and a
// closing OK, so commands end without waiting for timeouts.
type scriptedPort struct {
	answer []byte
	pr     *io.PipeReader
	pw     *io.PipeWriter
}

func (p *scriptedPort) Read(b []byte) (int, error) { return p.pr.Read(b) }
func (p *scriptedPort) Write(b []byte) (int, error) {
	a := append(append([]byte(nil), p.answer...), "\r\nOK\r\n"...)
	go p.pw.Write(a) // fails with ErrClosedPipe after Close
	return len(b), nil
}
func (p *scriptedPort) Close() error { p.pr.Close(); return p.pw.Close() }

// FuzzCommandAnswer feeds arbitrary module output to a running driver:
// whatever comes, a command ends with an answer, a typed error or a
// timeout, and the driver shuts down cleanly.
func FuzzCommandAnswer(f *testing.F) {
	addStreams(f)
	f.Fuzz(func(t *testing.T, answer []byte) {
		pr, pw := io.Pipe()
		m := New(&scriptedPort{answer: answer, pr: pr, pw: pw}, Config{Timeout: time.Second, Settle: time.Millisecond, OnURC: func(URC) {}})
		defer m.Close()
		ctx := context.Background()
		for _, cmd := range []string{"ATI", "AT+CSQ", "AT+CREG?"} {
			var err error
			switch cmd {
			case "AT+CSQ":
				_, err = m.Signal(ctx)
			case "AT+CREG?":
				_, err = m.queryReg(ctx, "CREG")
			default:
				_, err = m.Command(ctx, cmd)
			}
			if err != nil && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrCommandFailed) && !errors.Is(err, ErrSyntax) {
				t.Fatalf("%s with answer %q: untyped error %v", cmd, answer, err)
			}
		}
	})
}
