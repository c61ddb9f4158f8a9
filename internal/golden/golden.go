// Package golden keeps golden files in testdata/ in step with the code
// that writes them: tests compare, and rewrite them when run with -update.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Check compares each file (name → the bytes the code writes now) with
// dir/name, or writes them all when update is set.
func Check(t testing.TB, dir string, files map[string][]byte, update bool) {
	t.Helper()
	for name, want := range files {
		path := filepath.Join(dir, name)
		if update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run the test with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the code writes now (run the test with -update)", path)
		}
	}
}
