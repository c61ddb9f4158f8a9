package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"meterupd/delta"
	"meterupd/internal/atomicfile"
)

func init() {
	register(&command{name: "diff", usage: "OLD NEW DELTA [--format node|node2|node1|bsdiff40|bsdiff43]: make a binary delta", run: runDiff})
	register(&command{name: "patch", usage: "OLD DELTA NEW: apply a delta (format detected from its header)", run: runPatch})
	register(&command{name: "chain", usage: "OLD NEW DELTA1 DELTA2...: apply a chain of deltas in one pass", run: runChain})
}

// splitFormat takes --format VALUE (or --format=VALUE, -format) out of
// args, wherever it is.
func splitFormat(args []string) (delta.Format, []string, error) {
	f := delta.FormatNode
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "format" {
			if strings.HasPrefix(a, "-") && a != "-" {
				return 0, nil, usageError{fmt.Sprintf("unknown flag %s", a)}
			}
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 == len(args) {
				return 0, nil, usageError{"--format needs a value"}
			}
			i++
			val = args[i]
		}
		var err error
		if f, err = delta.ParseFormat(val); err != nil {
			return 0, nil, usageError{err.Error()}
		}
	}
	return f, rest, nil
}

// diffGCPercent is the collector's target for diff: the diff's large
// arrays (images, suffix arrays) hold no pointers, so collecting often is
// cheap, and it keeps the peak near the live set instead of twice it.
const diffGCPercent = 20

func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(diffGCPercent))
	}
	f, args, err := splitFormat(args)
	if err != nil {
		return err
	}
	if len(args) != 3 {
		return usageError{"usage: meterpkg diff OLD NEW DELTA [--format node|node2|node1|bsdiff40|bsdiff43]"}
	}
	old, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	nw, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	p, err := delta.DiffWith(old, nw, delta.DiffOptions{Format: f, InPlace: true})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(args[2], 0o644, func(w io.Writer) error { _, err := w.Write(p); return err }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d bytes (%s, %.3f%% of new)\n", args[2], len(p), f, 100*float64(len(p))/float64(max(1, len(nw))))
	return nil
}

func runPatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 3 {
		return usageError{"usage: meterpkg patch OLD DELTA NEW"}
	}
	return applyFiles(ctx, args[0], args[2], args[1:2])
}

func runChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 3 {
		return usageError{"usage: meterpkg chain OLD NEW DELTA1 DELTA2..."}
	}
	return applyFiles(ctx, args[0], args[1], args[2:])
}

// applyMemoryLimit is the soft heap limit of patch and chain.
const applyMemoryLimit = 12 << 20

// fileBlocks writes Apply's blocks to a file in order.
type fileBlocks struct{ w *bufio.Writer }

func (f fileBlocks) WriteBlock(_ int64, p []byte) error {
	_, err := f.w.Write(p)
	return err
}

// applyFiles streams the chain from the old file to the new one: the old
// image is read at random, the patches through their files, and the new
// image written in order, as on a node.
//
// Like the agent on a node, it runs with a soft memory limit (unless
// GOMEMLIMIT says otherwise), so that the garbage of frame decoding is
// collected before the heap grows: peak RSS then stays near the live set.
func applyFiles(ctx context.Context, oldPath, newPath string, deltas []string) error {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(applyMemoryLimit)
	}
	old, err := os.Open(oldPath)
	if err != nil {
		return err
	}
	defer old.Close()
	fi, err := old.Stat()
	if err != nil {
		return err
	}
	var patches []io.Reader
	for _, d := range deltas {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		defer f.Close()
		patches = append(patches, f)
	}
	return atomicfile.Write(newPath, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		if _, err := delta.Apply(ctx, old, fi.Size(), patches, fileBlocks{bw}, delta.Options{}); err != nil {
			return err
		}
		return bw.Flush()
	})
}
