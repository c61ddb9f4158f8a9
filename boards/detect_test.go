package boards_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"meterupd/boards"
	"meterupd/boards/hw"
)

func init() {
	boards.MustRegister(boards.Entry{
		Name:       "detect-test-dt",
		Compatible: []string{"meterupd,detect-test", "ti,am33xx"},
		Open:       func(boards.Config) (hw.Board, error) { return nil, errors.ErrUnsupported },
	})
	boards.MustRegister(boards.Entry{
		Name: "detect-test-probe",
		Probe: func(cfg boards.Config) (bool, error) {
			_, err := os.Stat(filepath.Join(cfg.Root, "probe-me"))
			return err == nil, nil
		},
		Open: func(boards.Config) (hw.Board, error) { return nil, errors.ErrUnsupported },
	})
}

func treeWith(t *testing.T, compatible string, probe bool) string {
	t.Helper()
	root := t.TempDir()
	if compatible != "" {
		data, err := os.ReadFile(filepath.Join("testdata", compatible))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "proc", "device-tree")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "compatible"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if probe {
		if err := os.WriteFile(filepath.Join(root, "probe-me"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name       string
		compatible string
		probe      bool
		want       string
		wantErr    error
	}{
		{"by a generic compatible", "compatible-beaglebone-black", false, "detect-test-dt", nil},
		{"by probe without a device tree", "", true, "detect-test-probe", nil},
		{"nothing matches", "", false, "", boards.ErrNoBoard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := boards.Detect(boards.Config{Root: treeWith(t, tt.compatible, tt.probe)})
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Detect() = %q, %v, want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseCompatible(t *testing.T) {
	got, err := boards.ParseCompatible([]byte("ti,am335x-bone-black\x00ti,am33xx\x00"))
	if want := []string{"ti,am335x-bone-black", "ti,am33xx"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseCompatible = %q, %v, want %q", got, err, want)
	}
	for _, in := range []string{"no-nul", "a\x00\x00", "\x00", "a\x01b\x00"} {
		if _, err := boards.ParseCompatible([]byte(in)); !errors.Is(err, boards.ErrCompatible) {
			t.Errorf("ParseCompatible(%q) = %v, want ErrCompatible", in, err)
		}
	}
}

func FuzzParseCompatible(f *testing.F) {
	for _, name := range []string{"compatible-beaglebone-black", "compatible-ref-meter"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := boards.ParseCompatible(data)
		if err != nil {
			if !errors.Is(err, boards.ErrCompatible) {
				t.Fatalf("error %v does not wrap ErrCompatible", err)
			}
			return
		}
		if again := boards.FormatCompatible(c); string(again) != string(data) {
			t.Fatalf("round trip: %q, want %q", again, data)
		}
	})
}
