package modem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testLines returns the lines of a testdata file, without comments.
func testLines(t testing.TB, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestParseCSQ(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Signal
		dbm  int
		ok   bool
	}{
		{"+CSQ: 0,0", Signal{0, 0}, -113, true},
		{"+CSQ: 31,7", Signal{31, 7}, -51, true},
		{"+CSQ: 21,99", Signal{21, 99}, -71, true},
		{"+CSQ:15,3", Signal{15, 3}, -83, true},
		{"+CSQ: 99,99", Signal{99, 99}, 0, false},
	} {
		got, err := ParseCSQ(tc.line)
		if err != nil || got != tc.want {
			t.Errorf("ParseCSQ(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
		dbm, ok := got.DBm()
		if dbm != tc.dbm || ok != tc.ok {
			t.Errorf("%+v.DBm() = %d, %v; want %d, %v", got, dbm, ok, tc.dbm, tc.ok)
		}
	}
	for _, bad := range []string{"+CSQ: 32,0", "+CSQ: 100,99", "+CSQ: 21,8", "+CSQ: 21", "+CSQ: 21,99,1",
		"+CSQ: -1,99", "+CSQ: +5,99", `+CSQ: "21",99`, "+CSQ: ,", "+CSQ: 21,99abc", "+CREG: 1,1", ""} {
		_, err := ParseCSQ(bad)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseCSQ(%q) = %v, want a *SyntaxError", bad, err)
		}
	}
}

func TestParseReg(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Reg
	}{
		{"+CREG: 0,1", Reg{Cmd: "CREG", Mode: 0, Stat: 1, AcT: -1}},
		{"+CREG: 2,1,\"1A2B\",\"01C3D4E5\",7", Reg{Cmd: "CREG", Mode: 2, Stat: 1, Area: "1A2B", Cell: "01C3D4E5", AcT: 7}},
		{"+CREG: 2,5,\"00ff\",\"0000abcd\",0", Reg{Cmd: "CREG", Mode: 2, Stat: 5, Area: "00FF", Cell: "0000ABCD", AcT: 0}},
		{"+CREG: 5", Reg{Cmd: "CREG", Mode: -1, Stat: 5, AcT: -1}},
		{"+CREG: 1,\"1A2B\",\"01C3D4E5\",7", Reg{Cmd: "CREG", Mode: -1, Stat: 1, Area: "1A2B", Cell: "01C3D4E5", AcT: 7}},
		{"+CEREG: 4,1,\"1A2B\",\"01C3D4E5\",9,,,\"00100100\",\"01000011\"", Reg{Cmd: "CEREG", Mode: 4, Stat: 1, Area: "1A2B", Cell: "01C3D4E5", AcT: 9}},
		{"+CEREG: 1", Reg{Cmd: "CEREG", Mode: -1, Stat: 1, AcT: -1}},
		{"+CGREG: 2,1,\"1A2B\",\"01C3D4E5\",2", Reg{Cmd: "CGREG", Mode: 2, Stat: 1, Area: "1A2B", Cell: "01C3D4E5", AcT: 2}},
	} {
		got, err := ParseReg(tc.line)
		if err != nil {
			t.Errorf("ParseReg(%q) = %v", tc.line, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseReg(%q) (-want +got):\n%s", tc.line, d)
		}
	}
	for _, bad := range []string{"+CREG: 1,\"1A2B\"", "+CREG: 6,1", "+CREG: 2,12", "+CREG: 2,1,\"XYZ\",\"01C3D4E5\",7",
		"+CREG: 2,1,\"1A2B\",\"01C3D4E5\",16", "+CREG: 2,1,\"1A2B", "+CREG: 2,1,\"1A2B\"x,\"01C3D4E5\"", "+CREG:",
		"+CREG: 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "+COPS: 0,0,\"Vodafone.de\",7"} {
		if _, err := ParseReg(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseReg(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestRegStat(t *testing.T) {
	for s, want := range map[RegStat]bool{0: false, 1: true, 2: false, 3: false, 4: false, 5: true, 8: false, 10: true} {
		if got := s.Registered(); got != want {
			t.Errorf("RegStat(%d).Registered() = %v, want %v", s, got, want)
		}
	}
}

func TestParseCMEError(t *testing.T) {
	for _, tc := range []struct {
		line string
		want CMEError
	}{
		{"+CME ERROR: 10", CMEError{Code: 10, Text: "sim not inserted"}},
		{"+CME ERROR: 30", CMEError{Code: 30, Text: "no network service"}},
		{"+CME ERROR: 7000", CMEError{Code: 7000}},
		{"+CME ERROR: SIM not inserted", CMEError{Code: -1, Text: "SIM not inserted"}},
		{"+CMS ERROR: 500", CMEError{Code: 500, SMS: true}},
	} {
		got, err := ParseCMEError(tc.line)
		if err != nil || *got != tc.want {
			t.Errorf("ParseCMEError(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{"+CME ERROR:", "+CME ERROR: 99999999", "+CME ERROR: 10x", "ERROR"} {
		if _, err := ParseCMEError(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseCMEError(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestParseATIAndCGMR(t *testing.T) {
	got := ParseATI([]string{"Quectel", "BG95-M3", "Revision: BG95M3LAR02A03"})
	want := Identity{Manufacturer: "Quectel", Model: "BG95-M3", Revision: "BG95M3LAR02A03"}
	if got != want {
		t.Errorf("ParseATI = %+v, want %+v", got, want)
	}
	if got := ParseATI([]string{"SIM800 R14.18"}); got.Model != "SIM800 R14.18" {
		t.Errorf("ParseATI(one line) = %+v", got)
	}
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"BG95M3LAR02A03"}, "BG95M3LAR02A03"},
		{[]string{"+CGMR: \"LE910C1-EU 25.30.224\""}, "LE910C1-EU 25.30.224"},
		{[]string{"Revision: 1951B08SIM7600G"}, "1951B08SIM7600G"},
	} {
		if got, err := ParseCGMR(tc.lines); err != nil || got != tc.want {
			t.Errorf("ParseCGMR(%q) = %q, %v; want %q", tc.lines, got, err, tc.want)
		}
	}
	if _, err := ParseCGMR(nil); !errors.Is(err, ErrSyntax) {
		t.Errorf("ParseCGMR(nil) = %v, want ErrSyntax", err)
	}
}

type token struct {
	Line   string
	Prompt bool
}

func split(p []byte) ([]token, int) {
	var s Splitter
	var out []token
	s.Feed(p, func(l string, prompt bool) { out = append(out, token{l, prompt}) })
	return out, s.Dropped
}

func TestSplitter(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []token
		dropped int
	}{
		{"\r\nOK\r\n", []token{{Line: "OK"}}, 0},
		{"ATI\r\r\nQuectel\r\n\r\nOK\r\n", []token{{Line: "ATI"}, {Line: "Quectel"}, {Line: "OK"}}, 0},
		{"\x00\xffO\x80K\r\n", []token{{Line: "OK"}}, 3},
		{"\r\n> ", []token{{Prompt: true}}, 0},
		{"\r\n> x\r\n", []token{{Prompt: true}, {Line: "x"}}, 0},
		{"a>  \r\n", []token{{Line: "a>"}}, 0},
		{"+CREG: 5\n\n+CSQ: 1,2\r", []token{{Line: "+CREG: 5"}, {Line: "+CSQ: 1,2"}}, 0},
		{strings.Repeat("x", MaxLine+5) + "\r\nOK\r\n", []token{{Line: "OK"}}, MaxLine + 5},
		{strings.Repeat("y", MaxLine) + "\r\n", []token{{Line: strings.Repeat("y", MaxLine)}}, 0},
	} {
		got, dropped := split([]byte(tc.in))
		if d := cmp.Diff(tc.want, got); d != "" || dropped != tc.dropped {
			t.Errorf("split(%q) dropped %d (want %d), (-want +got):\n%s", tc.in, dropped, tc.dropped, d)
		}
	}
	// Byte by byte gives the same as all at once.
	in := []byte("ATI\r\r\nQuectel\r\n\x00> \r\n+CSQ: 1,2\r\nOK\r\n")
	whole, _ := split(in)
	var s Splitter
	var bytewise []token
	for i := range in {
		s.Feed(in[i:i+1], func(l string, p bool) { bytewise = append(bytewise, token{l, p}) })
	}
	if d := cmp.Diff(whole, bytewise); d != "" {
		t.Errorf("byte-wise split differs (-whole +bytewise):\n%s", d)
	}
}

func TestSplitParams(t *testing.T) {
	line := `+X: 1, "a,b" ,,x y `
	got, err := splitParams(line, 3)
	want := []field{{s: "1"}, {s: "a,b", quoted: true}, {s: ""}, {s: "x y"}}
	if err != nil || !cmp.Equal(want, got, cmp.AllowUnexported(field{})) {
		t.Errorf("splitParams(%q) = %+v, %v; want %+v", line, got, err, want)
	}
	_, err = splitParams(`+X: "abc`, 3)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Offset != 4 {
		t.Errorf("splitParams(unterminated) = %v, want SyntaxError at offset 4", err)
	}
}
