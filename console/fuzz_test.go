package console

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

// seeds are the lines of testdata/lines.txt and the documented login line.
func seeds(t testing.TB) []string {
	f, err := os.Open("testdata/lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	b, err := os.ReadFile("testdata/login.txt")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, strings.TrimSpace(string(b)), "status\x00", "\xff\xfe", strings.Repeat("a", MaxLine+1))
}

// FuzzParse: any line parses to a known command or a typed error; a
// parsed command's name is in the table and its scope is the table's.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(line)
		if err != nil {
			if c != (Command{}) {
				t.Fatalf("error %v with a command %+v", err, c)
			}
			return
		}
		if c.Name == "" {
			if strings.TrimSpace(line) != "" {
				t.Fatalf("%q parsed to nothing", line)
			}
			return
		}
		s, ok := specs[c.Name]
		if !ok || s.needs != c.Needs {
			t.Fatalf("%q parsed to %+v", line, c)
		}
	})
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Command
		err  error
	}{
		{"status", Command{Name: "status"}, nil},
		{"  STATUS \r", Command{}, ErrGarbled},
		{"  STATUS ", Command{Name: "status"}, nil},
		{"install", Command{Name: "install", Needs: "install"}, nil},
		{"rollback display flickers", Command{Name: "rollback", Arg: "display flickers", Needs: "rollback"}, nil},
		{"json ON", Command{Name: "json", Arg: "on"}, nil},
		{"json maybe", Command{}, ErrArgs},
		{"status now", Command{}, ErrArgs},
		{"staus", Command{}, ErrUnknown},
		{"login", Command{Name: "login"}, nil},
		{"login zz AAAA BBBB", Command{}, errors.New("techtoken: malformed login line")},
		{"sta\x01tus", Command{}, ErrGarbled},
		{"\xff", Command{}, ErrGarbled},
		{strings.Repeat("a", MaxLine+1), Command{}, ErrTooLong},
		{"", Command{}, nil},
	} {
		got, err := Parse(tc.line)
		if got != tc.want || (tc.err == nil) != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err.Error()) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.line, got, err, tc.want, tc.err)
		}
	}
	b, _ := os.ReadFile("testdata/login.txt")
	if c, err := Parse(strings.TrimSpace(string(b))); err != nil || c.Name != "login" || c.Arg == "" {
		t.Errorf("the documented login line: %+v, %v", c, err)
	}
}
