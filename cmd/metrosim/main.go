// Command metrosim is a simulated metrology process for the metering
// benchmark (make bench-metering): it meters for a number of scaled
// intervals and prints each interval's result as a JSON line.
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

	"meterupd/internal/metrosim"
)

func main() {
	var o metrosim.Options
	flag.DurationVar(&o.Sample, "sample", 10*time.Millisecond, "sampling period")
	flag.DurationVar(&o.Interval, "interval", time.Second, "interval length")
	flag.IntVar(&o.Intervals, "intervals", 10, "intervals to meter")
	flag.StringVar(&o.Readings, "readings", "readings.bin", "readings file (appended, fsynced at each close)")
	flag.DurationVar(&o.WorkTime, "work", 0, "CPU time of each sample's processing (0: a few tens of µs)")
	flag.StringVar(&o.GateFile, "gate", "", "gate file: exists while an interval is closing")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rs, err := metrosim.Run(ctx, o)
	enc := json.NewEncoder(os.Stdout)
	for _, r := range rs {
		enc.Encode(r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrosim:", err)
		os.Exit(1)
	}
}
