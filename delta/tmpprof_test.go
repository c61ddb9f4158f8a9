package delta

import (
	"context"
	"io"
	"os"
	"runtime/debug"
	"testing"
)

type nopW struct{}

func (nopW) WriteBlock(int64, []byte) error { return nil }

func TestTmpProf(t *testing.T) {
	debug.SetMemoryLimit(12 << 20)
	for i := 0; i < 10; i++ {
		old, _ := os.Open("../.cache/corpus/0.27.5.bin")
		p, _ := os.Open("../.cache/bench-delta/0.27.5-0.27.6.node")
		if _, err := Apply(context.Background(), old, 10617016, []io.Reader{p}, nopW{}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
}
