package fileitem

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"meter.conf", true},
		{"ca-2026_v2+root.pem", true},
		{"A", true},
		{strings.Repeat("a", MaxName), true},
		{strings.Repeat("a", MaxName+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"sub/file", false},
		{`sub\file`, false},
		{".hidden", false},
		{".archive", false},
		{"a b", false},
		{"a\x00b", false},
		{"é.conf", false},
	} {
		err := ValidName(tc.name)
		if got := err == nil; got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrName) {
			t.Errorf("ValidName(%q) = %v, not ErrName", tc.name, err)
		}
	}
}

// snapshot is every file below dir, by relative path.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func content(t *testing.T, p Place, name string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func install(p Place, name, s string) error {
	return p.Install(name, strings.NewReader(s), int64(len(s)))
}

func TestInstallCommitRestore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		old     *string
		restore bool
	}{
		{"replace, commit", ptr("old"), false},
		{"replace, restore", ptr("old"), true},
		{"new file, commit", nil, false},
		{"new file, restore", nil, true},
		{"empty old file, restore", ptr(""), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Place{Dir: t.TempDir()}
			if tc.old != nil {
				if err := os.WriteFile(filepath.Join(p.Dir, "meter.conf"), []byte(*tc.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := install(p, "meter.conf", "new"); err != nil {
				t.Fatalf("Install = %v", err)
			}
			if got, _ := content(t, p, "meter.conf"); got != "new" {
				t.Fatalf("after Install: %q, want %q", got, "new")
			}
			if a, _ := p.Archived("meter.conf"); !a {
				t.Errorf("Archived = false after Install")
			}
			want, wantOK := "new", true
			if tc.restore {
				if err := p.Restore("meter.conf"); err != nil {
					t.Fatalf("Restore = %v", err)
				}
				want, wantOK = "", tc.old != nil
				if wantOK {
					want = *tc.old
				}
			} else if err := p.Commit("meter.conf"); err != nil {
				t.Fatalf("Commit = %v", err)
			}
			if got, ok := content(t, p, "meter.conf"); got != want || ok != wantOK {
				t.Errorf("content = %q (exists %v), want %q (exists %v)", got, ok, want, wantOK)
			}
			if a, _ := p.Archived("meter.conf"); a {
				t.Errorf("Archived = true after commit/restore")
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestBadInputChangesNothing: a bad name, an oversized item, content of
// another length than declared leave the place as it was.
func TestBadInputChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		item    string
		content string
		size    int64
		want    error
	}{
		{"dot dot", "../escape", "x", 1, ErrName},
		{"slash", "a/b", "x", 1, ErrName},
		{"too large", "meter.conf", "x", 65, ErrTooLarge},
		{"negative size", "meter.conf", "x", -1, ErrTooLarge},
		{"short content", "meter.conf", "abc", 4, ErrSize},
		{"long content", "meter.conf", "abcde", 4, ErrSize},
		{"short content, new item", "new.conf", "abc", 4, ErrSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Place{Dir: t.TempDir(), MaxSize: 64}
			if err := os.WriteFile(filepath.Join(p.Dir, "meter.conf"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, p.Dir)
			err := p.Install(tc.item, strings.NewReader(tc.content), tc.size)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Install(%q, %d bytes declared %d) = %v, want %v", tc.item, len(tc.content), tc.size, err, tc.want)
			}
			if after := snapshot(t, p.Dir); !maps.Equal(before, after) {
				t.Errorf("place changed: before %v, after %v", before, after)
			}
		})
	}
}

var errCrash = errors.New("power cut")

// TestPowerCut stops an update at every step (and leaves the temporary
// files a write cut by a power loss leaves), then checks that the item is
// whole, old or new, and that both ways on (install again and commit, or
// restore) end where they should.
func TestPowerCut(t *testing.T) {
	type cut struct {
		name    string
		install string // crash Install at this step ("" none)
		done    bool   // Install completed, no Commit yet
		restore string // then crash Restore at this step
		torn    bool   // a write was cut: temporary files remain
	}
	cuts := []cut{
		{name: "before archive written", torn: true},
		{name: "archived", install: "archived"},
		{name: "archived, torn new write", install: "archived", torn: true},
		{name: "installed", done: true},
		{name: "installed, restore cut", done: true, restore: "restored"},
		{name: "installed, restore torn", done: true, torn: true},
	}
	for _, old := range []*string{ptr("old content"), nil} {
		for _, c := range cuts {
			// reinstall+restore: the agent repeats the Install step it was
			// in, then the update fails and rolls back.
			for _, resume := range []string{"commit", "restore", "reinstall+restore"} {
				name := c.name + "/" + resume
				if old == nil {
					name = "new item/" + name
				}
				t.Run(name, func(t *testing.T) {
					p := Place{Dir: t.TempDir()}
					if old != nil {
						if err := os.WriteFile(filepath.Join(p.Dir, "cert.pem"), []byte(*old), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					crashing := p
					crashing.crash = func(step string) error {
						if step == c.install || step == c.restore {
							return errCrash
						}
						return nil
					}
					switch {
					case c.install != "":
						if err := install(crashing, "cert.pem", "new content"); !errors.Is(err, errCrash) {
							t.Fatalf("Install = %v, want the crash", err)
						}
					case c.done:
						if err := install(p, "cert.pem", "new content"); err != nil {
							t.Fatal(err)
						}
						if c.restore != "" {
							if err := crashing.Restore("cert.pem"); !errors.Is(err, errCrash) {
								t.Fatalf("Restore = %v, want the crash", err)
							}
						}
					}
					if c.torn {
						os.MkdirAll(filepath.Join(p.Dir, archiveDir), 0o755)
						for _, f := range []string{".cert.pem.tmp123", filepath.Join(archiveDir, ".cert.pem.tmp456")} {
							if err := os.WriteFile(filepath.Join(p.Dir, f), []byte("half"), 0o600); err != nil {
								t.Fatal(err)
							}
						}
					}
					// After the cut: the item is whole.
					got, ok := content(t, p, "cert.pem")
					if !(ok && got == "new content") && !(old == nil && !ok) && !(old != nil && ok && got == *old) {
						t.Fatalf("after the cut the item is %q (exists %v): neither old nor new", got, ok)
					}
					// Power back: the agent goes on as its journal says.
					var want string
					wantOK := true
					if resume == "commit" {
						if err := install(p, "cert.pem", "new content"); err != nil {
							t.Fatalf("Install again = %v", err)
						}
						if err := p.Commit("cert.pem"); err != nil {
							t.Fatalf("Commit = %v", err)
						}
						want = "new content"
					} else {
						if resume == "reinstall+restore" {
							if err := install(p, "cert.pem", "new content"); err != nil {
								t.Fatalf("Install again = %v", err)
							}
						}
						if err := p.Restore("cert.pem"); err != nil {
							t.Fatalf("Restore = %v", err)
						}
						if old != nil {
							want = *old
						} else {
							wantOK = false
						}
					}
					if got, ok := content(t, p, "cert.pem"); got != want || ok != wantOK {
						t.Errorf("after %s: %q (exists %v), want %q (exists %v)", resume, got, ok, want, wantOK)
					}
					// Nothing is left behind but the item.
					left := snapshot(t, p.Dir)
					delete(left, "cert.pem")
					if len(left) != 0 {
						t.Errorf("left behind: %v", left)
					}
				})
			}
		}
	}
}

// TestRestoreTwice: a second Restore (a repeat after a crash that came
// after the first) keeps the restored content.
func TestRestoreTwice(t *testing.T) {
	p := Place{Dir: t.TempDir()}
	if err := install(p, "a.conf", "one"); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit("a.conf"); err != nil {
		t.Fatal(err)
	}
	if err := install(p, "a.conf", "two"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Restore("a.conf"); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := content(t, p, "a.conf"); got != "one" {
		t.Errorf("after two restores: %q, want %q", got, "one")
	}
}

func TestCorruptArchive(t *testing.T) {
	p := Place{Dir: t.TempDir()}
	if err := install(p, "a.conf", "one"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.archive("a.conf"), []byte("Xjunk"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, p.Dir)
	if err := p.Restore("a.conf"); !errors.Is(err, ErrCorruptArchive) {
		t.Fatalf("Restore from a corrupt archive = %v, want ErrCorruptArchive", err)
	}
	if after := snapshot(t, p.Dir); !maps.Equal(before, after) {
		t.Errorf("Restore changed the place: %v → %v", before, after)
	}
}
