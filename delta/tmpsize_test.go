package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

type nopW struct{}

func (nopW) WriteBlock(int64, []byte) error { return nil }

func TestTmpSize(t *testing.T) {
	for _, v := range []string{"2 3", "4 5"} {
		var a, b int
		fmt.Sscan(v, &a, &b)
		old, _ := os.ReadFile(fmt.Sprintf("../.cache/corpus/0.27.%d.bin", a))
		nw, _ := os.ReadFile(fmt.Sprintf("../.cache/corpus/0.27.%d.bin", b))
		for _, F := range []int64{512 << 10, 1 << 20} {
			p, err := DiffWith(old, nw, DiffOptions{FrameSize: F})
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(fmt.Sprintf("/tmp/dm/r%d_%d%d", F>>10, a, b), p, 0o644)
			t0 := time.Now()
			for i := 0; i < 3; i++ {
				if _, err := Apply(context.Background(), bytes.NewReader(old), int64(len(old)), []io.Reader{bytes.NewReader(p)}, nopW{}, Options{}); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%d->%d F=%d size %d apply %v", a, b, F, len(p), time.Since(t0)/3)
		}
	}
}
