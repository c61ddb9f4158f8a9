// Command meterbench runs the metering benchmark (make bench-metering; see
// docs/metering.md):
//
//	meterbench prepare --dir DIR [--size BYTES]
//	meterbench apply --dir DIR --mode throttled|unthrottled   (the load; stops on SIGTERM)
//	meterbench run --dir DIR --metrosim PATH [--intervals N]
//
// run prints one line per phase and exits 0 when the run passed, 1 when
// the throttled phase missed intervals on a clean machine, 2 on bad usage,
// 3 when the run is inconclusive.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"meterupd/internal/meterbench"
	"meterupd/internal/metrosim"
	"meterupd/throttle"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: meterbench prepare|apply|run --dir DIR …")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "benchmark directory")
	size := fs.Int("size", 4<<20, "image size (prepare)")
	mode := fs.String("mode", "throttled", "load mode (apply)")
	ms := fs.String("metrosim", "metrosim", "metrosim program (run)")
	n := fs.Int("intervals", 10, "intervals per phase (run)")
	work := fs.Duration("work", 6*time.Millisecond, "CPU time of each 10 ms metrosim sample (run)")
	keep := fs.Bool("keep-priority", false, "the throttled load keeps normal CPU and I/O priority (run, apply)")
	fs.Parse(os.Args[2:])
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "meterbench: --dir is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch os.Args[1] {
	case "prepare":
		if err := meterbench.Prepare(*dir, *size); err != nil {
			fail(err)
		}
	case "apply":
		o, lower, err := meterbench.ModeOptions(*dir, *mode)
		if err != nil {
			fail(err)
		}
		if lower && !*keep {
			if err := throttle.LowerPriority(); err != nil {
				fmt.Fprintln(os.Stderr, "meterbench:", err)
			}
		}
		res, err := meterbench.Load(ctx, *dir, o, 0)
		if err != nil {
			fail(err)
		}
		json.NewEncoder(os.Stdout).Encode(res)
	case "run":
		self, err := os.Executable()
		if err != nil {
			fail(err)
		}
		ps, err := meterbench.Run(ctx, meterbench.Config{Dir: *dir, Self: self, Metrosim: *ms, Intervals: *n, Work: *work, KeepPriority: *keep, Criteria: metrosim.DefaultCriteria(), Log: os.Stderr})
		if err != nil {
			fail(err)
		}
		pass := meterbench.Judge(ps)
		for _, p := range ps {
			fmt.Fprintln(os.Stderr, p.Detail())
		}
		for _, p := range ps {
			fmt.Println(p.Line())
		}
		switch {
		case pass:
		case ps[1].Verdict == "degraded":
			os.Exit(1)
		default:
			os.Exit(3)
		}
	default:
		fmt.Fprintln(os.Stderr, "meterbench: unknown command", os.Args[1])
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "meterbench:", err)
	os.Exit(1)
}
