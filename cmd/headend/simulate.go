package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"meterupd/headend"
	"meterupd/headend/fleetsim"
	"meterupd/pkgbuild"
)

const simulateUsage = `usage: headend simulate --nodes N --broker URL --dir DIR --keys PEM [--fail 1%] [--seed S]
                        [--device-type T] [--version V] [--id-prefix P] [--connect-rate R]
                        [--check CAMPAIGN --db DB [--check-timeout D]]
       headend simulate release --key KEY.pem -o FILE [--from 1.0] [--to 2.0] [--device-type T] [--sequence N]

simulate runs N simulated meters in this process — each the real node daemon
(agent, package store, delta apply, trial boot, health checks) on a sim board,
with its own MQTT connection to the broker — until it is stopped, or, with
--check, until the campaign ends; then it reads every node's journal and
compares it with the head-end's store. --fail gives that share of the nodes
(chosen by the seed) the hardware revision whose image in the release fails
its health check. "simulate release" writes that release, signed.
`

// simulate is `headend simulate`.
func simulate(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "release" {
		return simulateRelease(args[1:])
	}
	var c common
	fs := flags("simulate", &c)
	fs.Usage = func() { fmt.Fprint(os.Stderr, simulateUsage) }
	var cfg fleetsim.Config
	fs.IntVar(&cfg.Nodes, "nodes", 0, "how many nodes")
	fs.StringVar(&cfg.Broker, "broker", "tcp://127.0.0.1:1883", "the broker: tcp://HOST:PORT")
	fs.StringVar(&cfg.Dir, "dir", "", "the nodes' state directories (kept: a second run with the same flags goes on with the same nodes)")
	fail := fs.String("fail", "0%", "share of nodes whose update fails its health check, e.g. 1%")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "chooses the failing nodes")
	fs.StringVar(&cfg.DeviceType, "device-type", "em300", "the nodes' device type")
	fs.StringVar(&cfg.Version, "version", "1.0", "the nodes' factory version")
	fs.StringVar(&cfg.IDPrefix, "id-prefix", "sim-", "node ids: PREFIX + a five-digit number")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", 200, "nodes started (and connecting) per second, at most")
	keys := fs.String("keys", "", "PEM file of the public keys the nodes trust (the release key's)")
	check := fs.String("check", "", "when this campaign ends, check every node's journal against the store (--db) and exit")
	checkTimeout := fs.Duration("check-timeout", time.Hour, "give up the --check wait after this long")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Fail, err = parsePercent(*fail); err != nil {
		return fmt.Errorf("--fail: %w", err)
	}
	if *keys == "" {
		return errors.New("--keys: the nodes need the release's public key")
	}
	if cfg.Keys, err = os.ReadFile(*keys); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if err := raiseOpenFiles(cfg.Nodes); err != nil {
		return err
	}
	var store headend.Store
	if *check != "" {
		if store, err = open(ctx, c); err != nil {
			return err
		}
		defer store.Close()
	}
	start := time.Now()
	f, err := fleetsim.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "simulate: %d nodes ready in %s (%.1f s); starting %g per second\n", cfg.Nodes, cfg.Dir, time.Since(start).Seconds(), cfg.ConnectRate)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(fctx) }()
	if *check == "" {
		return <-done
	}
	sum, cerr := waitAndCheck(ctx, f, store, *check, *checkTimeout)
	stop()
	if err := <-done; err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return cerr
	}
	for _, p := range sum.Problems {
		fmt.Fprintln(os.Stderr, "simulate:", p)
	}
	if sum.Lost > 0 || sum.Duplicated > 0 || sum.Wrapped > 0 || sum.Failed > 0 {
		return fmt.Errorf("simulate: %d lost, %d duplicated, %d failed, %d journals too short to tell", sum.Lost, sum.Duplicated, sum.Failed, sum.Wrapped)
	}
	return nil
}

// waitAndCheck waits until campaign id has ended (fleetsim.Ended), then
// prints the line of what the nodes' journals say against the store.
func waitAndCheck(ctx context.Context, f *fleetsim.Fleet, s headend.Store, id string, timeout time.Duration) (fleetsim.Summary, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	announced := false
	cp, targets, err := fleetsim.WaitEnded(wctx, s, id, time.Second, func() {
		if !announced && f.Started() == len(f.Nodes()) {
			announced = true
			fmt.Fprintf(stdout, "simulate: all %d nodes started\n", len(f.Nodes()))
		}
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fleetsim.Summary{}, fmt.Errorf("simulate: campaign %s has not ended after %s", id, timeout)
	}
	if err != nil {
		return fleetsim.Summary{}, err
	}
	endedAt := time.Now()
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return fleetsim.Summary{}, err
	}
	sum := fleetsim.Check(id, f.Outcomes(ctx, id), targets, nodes)
	fmt.Fprintf(stdout, "simulate: campaign=%s state=%s wave=%d/%d nodes=%d committed=%d rolled_back=%d unreachable=%d failed=%d lost=%d duplicated=%d wrapped=%d ended_unix=%.1f\n",
		id, cp.State, cp.Wave+1, len(cp.Waves), sum.Nodes, sum.Committed, sum.RolledBack, sum.Unreachable, sum.Failed, sum.Lost, sum.Duplicated, sum.Wrapped,
		float64(endedAt.UnixMilli())/1000)
	return sum, nil
}

// parsePercent reads "1%", "1" (both one percent) as a fraction.
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || !(v >= 0 && v <= 100) { // !(…) refuses NaN
		return 0, fmt.Errorf("%q: want a percentage from 0%% to 100%%", s)
	}
	return v / 100, nil
}

// raiseOpenFiles raises the soft open-files limit to the hard one: each
// node holds one connection. It says so when the hard limit is too low.
func raiseOpenFiles(nodes int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // not a system that tells
	}
	need := uint64(nodes) + 1024
	if lim.Cur < need && lim.Cur < lim.Max {
		lim.Cur = min(lim.Max, max(need, lim.Cur))
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("open-files limit: %w", err)
		}
	}
	if lim.Cur < need {
		return fmt.Errorf("%d nodes need about %d open files; the limit is %d (raise it: ulimit -n, or LimitNOFILE)", nodes, need, lim.Cur)
	}
	return nil
}

// simulateRelease is `headend simulate release`.
func simulateRelease(args []string) error {
	fs := flag.NewFlagSet("simulate release", flag.ContinueOnError)
	var r fleetsim.Release
	key := fs.String("key", "", "the release's private key (PEM)")
	out := fs.String("o", "", "the package file to write")
	fs.StringVar(&r.From, "from", "1.0", "the fleet's version")
	fs.StringVar(&r.To, "to", "2.0", "the new version")
	fs.StringVar(&r.DeviceType, "device-type", "em300", "the fleet's device type")
	fs.Uint64Var(&r.Sequence, "sequence", 1, "the package's sequence number")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *out == "" {
		return errors.New("usage: headend simulate release --key KEY.pem -o FILE")
	}
	signer, err := pkgbuild.LoadSigner(*key)
	if err != nil {
		return err
	}
	if err := fleetsim.WriteRelease(*out, r, signer); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "release %s → %s for %s written to %s (hardware revision %d gets an image that fails its health check)\n",
		r.From, r.To, r.DeviceType, *out, fleetsim.FailHardware)
	return nil
}
