package mtdsmoketest_test

import (
	"log/slog"
	"testing"

	"meterupd/boards/mtd/mtdsmoketest"
	"meterupd/boards/mtd/mtdtest"
)

func TestRunOnFakeNAND(t *testing.T) {
	chip := mtdtest.NewNAND(16*16<<10, 16<<10, 512, 16, 5)
	if err := mtdsmoketest.Run(chip, slog.New(slog.NewTextHandler(t.Output(), nil))); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if bad, _ := chip.IsBad(16 << 10); !bad {
		t.Errorf("block 1 not marked bad after Run")
	}
}

func TestRunOnFakeNOR(t *testing.T) {
	chip := mtdtest.NewNOR(8*64<<10, 64<<10)
	if err := mtdsmoketest.Run(chip, slog.New(slog.NewTextHandler(t.Output(), nil))); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestRunRefusesTinyPartition(t *testing.T) {
	chip := mtdtest.NewNAND(4*16<<10, 16<<10, 512, 16)
	if err := mtdsmoketest.Run(chip, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatalf("Run on 4 blocks = nil, want an error")
	}
}
