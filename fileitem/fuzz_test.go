package fileitem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidName: a name ValidName accepts stays inside its place and is
// neither the archive nor a temporary file of an atomic write.
func FuzzValidName(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "names.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidName(name)
		if err != nil {
			if !errors.Is(err, ErrName) {
				t.Fatalf("ValidName(%q) = %v, not ErrName", name, err)
			}
			return
		}
		const dir = "/place"
		p := filepath.Join(dir, name)
		if filepath.Dir(p) != dir || filepath.Base(p) != name {
			t.Fatalf("ValidName accepts %q, which leaves %s as %s", name, dir, p)
		}
		if strings.HasPrefix(name, ".") || name == archiveDir {
			t.Fatalf("ValidName accepts %q, a name of the place's own files", name)
		}
	})
}
