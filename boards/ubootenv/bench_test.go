package ubootenv

import (
	"fmt"
	"testing"

	"meterupd/boards/ubootenv/ubootenvtest"
)

// benchEnv is a realistic environment: ~60 variables, ~3 KiB.
func benchEnv() Env {
	e := Env{}
	for i := 0; i < 60; i++ {
		e[fmt.Sprintf("var_%02d", i)] = fmt.Sprintf("setenv bootargs console=ttyS0,115200 root=/dev/mtdblock%d rootfstype=squashfs", i)
	}
	return e
}

func BenchmarkEncode128K(b *testing.B) {
	env := benchEnv()
	b.SetBytes(128 << 10)
	for b.Loop() {
		if _, err := Encode(env, 128<<10, true, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadRedundant128K(b *testing.B) {
	f := ubootenvtest.NewNAND(512<<10, 128<<10, 2048)
	s, err := NewFlash(128<<10, []FlashCopy{{Flash: f, Offset: 0}, {Flash: f, Offset: 128 << 10}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Save(benchEnv()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSaveRedundant128K(b *testing.B) {
	f := ubootenvtest.NewNAND(512<<10, 128<<10, 2048)
	s, err := NewFlash(128<<10, []FlashCopy{{Flash: f, Offset: 0}, {Flash: f, Offset: 128 << 10}})
	if err != nil {
		b.Fatal(err)
	}
	env := benchEnv()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Save(env); err != nil {
			b.Fatal(err)
		}
	}
}
