//go:build unix

package ubootenv

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLockHeldDuringUpdate: with WithLockFile, another process's flock
// (fw_setenv's) fails while Update reads, changes and writes.
func TestLockHeldDuringUpdate(t *testing.T) {
	dir := t.TempDir()
	img, lock := filepath.Join(dir, "env.img"), filepath.Join(dir, "fw_printenv.lock")
	a, _ := Encode(Env{"a": "1"}, 0x400, false, 0)
	if err := os.WriteFile(img, a, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{Copies: []Location{{Device: img, Size: 0x400}}}, WithLockFile(lock))
	if err != nil {
		t.Fatal(err)
	}
	tryLock := func() error {
		f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE, 0o666)
		if err != nil {
			return err
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	err = s.Update(func(e Env) error {
		if err := tryLock(); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Errorf("flock during Update = %v, want EWOULDBLOCK", err)
		}
		e["b"] = "2"
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := tryLock(); err != nil {
		t.Errorf("flock after Update = %v, want the lock released", err)
	}
	// No lock directory: go on without the lock, as libubootenv does.
	s2, _ := Open(Config{Copies: []Location{{Device: img, Size: 0x400}}}, WithLockFile(filepath.Join(dir, "none", "x.lock")))
	if got, err := s2.Load(); err != nil || got["b"] != "2" {
		t.Errorf("Load without a lock directory = %v, %v", got, err)
	}
}
