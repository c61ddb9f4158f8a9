package blockdev_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/boards/blockdev"
	"meterupd/boards/hw"
)

const es = 64 << 10

// fakeTree makes root/sys/class/block/<dev>/uevent for each testdata uevent
// file and a device node (a regular file) of size bytes for each partition.
func fakeTree(t *testing.T, size int64) string {
	t.Helper()
	root := t.TempDir()
	for _, name := range []string{"uevent-mmcblk0", "uevent-mmcblk0p3"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		dev := strings.TrimPrefix(name, "uevent-")
		dir := filepath.Join(root, "sys", "class", "block", dev)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "uevent"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dev", "mmcblk0p3"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestOpenByPartitionName(t *testing.T) {
	root := fakeTree(t, 4*es+1000)
	f, err := blockdev.Open(root, "rootfs_a", blockdev.WithEraseSize(es))
	if err != nil {
		t.Fatalf("Open(rootfs_a) = %v", err)
	}
	defer f.Close()
	if got, want := f.Size(), int64(4*es); got != want {
		t.Errorf("Size() = %d, want %d (rounded down to erase units)", got, want)
	}
	if got, want := f.WriteSize(), int64(512); got != want {
		t.Errorf("WriteSize() = %d, want %d", got, want)
	}
	if _, err := blockdev.Open(root, "rootfs_b"); !errors.Is(err, blockdev.ErrNotFound) {
		t.Errorf("Open(rootfs_b) = %v, want ErrNotFound", err)
	}
}

func TestFlashRulesOnABlockDevice(t *testing.T) {
	root := fakeTree(t, 4*es)
	f, err := blockdev.Open(root, "rootfs_a", blockdev.WithEraseSize(es))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Erase(0, 2*es); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*es)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 2*es)) {
		t.Fatalf("after Erase: err %v, erased %v", err, bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 2*es)))
	}
	data := bytes.Repeat([]byte{0x5A}, 1024)
	if _, err := f.WriteAt(data, 512); err != nil {
		t.Fatalf("WriteAt = %v", err)
	}
	dev := filepath.Join(root, "dev", "mmcblk0p3")
	before, _ := os.ReadFile(dev)
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"set a bit", func() error { _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 512), 512); return err }, hw.ErrNotErased},
		{"misaligned write", func() error { _, err := f.WriteAt(make([]byte, 512), 100); return err }, hw.ErrAlignment},
		{"misaligned erase", func() error { return f.Erase(512, es) }, hw.ErrAlignment},
		{"erase past the end", func() error { return f.Erase(3*es, 2*es) }, blockdev.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			after, _ := os.ReadFile(dev)
			if !bytes.Equal(after, before) {
				t.Errorf("device changed")
			}
		})
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x50}, 512), 512); err != nil {
		t.Errorf("clearing bits = %v, want nil", err)
	}
	p := make([]byte, 10)
	if n, err := f.ReadAt(p, 4*es-5); n != 5 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v, want 5, EOF", n, err)
	}
}

func TestReadOnly(t *testing.T) {
	root := fakeTree(t, es)
	f, err := blockdev.Open(root, "rootfs_a", blockdev.WithEraseSize(es), blockdev.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Erase(0, es); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("Erase = %v, want ErrReadOnly", err)
	}
}

func TestParseUevent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "uevent-mmcblk0p3"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := blockdev.ParseUevent(data)
	if err != nil || ev["PARTNAME"] != "rootfs_a" || ev["DEVNAME"] != "mmcblk0p3" {
		t.Errorf("ParseUevent = %v, %v", ev, err)
	}
	for _, in := range []string{"novalue\n", "=x\n", "DEVNAME=../../etc/passwd\n", "DEVNAME=/etc\n", strings.Repeat("A=b\n", 2000)} {
		if _, err := blockdev.ParseUevent([]byte(in)); !errors.Is(err, blockdev.ErrUevent) {
			t.Errorf("ParseUevent(%.30q) = %v, want ErrUevent", in, err)
		}
	}
}

func FuzzParseUevent(f *testing.F) {
	for _, name := range []string{"uevent-mmcblk0", "uevent-mmcblk0p3"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := blockdev.ParseUevent(data)
		if err != nil {
			if !errors.Is(err, blockdev.ErrUevent) {
				t.Fatalf("error %v does not wrap ErrUevent", err)
			}
			return
		}
		// Round trip: formatting the map back parses to the same map.
		var b strings.Builder
		for k, v := range ev {
			if strings.ContainsAny(v, "\r\n") {
				return
			}
			b.WriteString(k + "=" + v + "\n")
		}
		again, err := blockdev.ParseUevent([]byte(b.String()))
		if err != nil || len(again) != len(ev) {
			t.Fatalf("reparse: %v, %d keys, want %d", err, len(again), len(ev))
		}
		for k, v := range ev {
			if again[k] != v {
				t.Fatalf("reparse %s = %q, want %q", k, again[k], v)
			}
		}
	})
}
