// Command headend is a lab head-end for meterupd nodes: `headend serve`
// runs the device state replica, an MQTT broker (embedded, or an external
// one with --broker), the package server and campaigns; the other commands
// read and change the same store. See docs/headend.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"meterupd/headend"
)

const usage = `usage: headend COMMAND [flags]

  serve                         run the head-end (embedded broker unless --broker)
  nodes [--json]                the fleet table
  node ID [--json]              a node's report history
  node ID --reset-seq           forget a node's report seq (a replaced node)
  node ID --device-type T       record a node's device type (for --select)
  campaign create PACKAGE --id ID [--select K=V,...] [--activate now|command|TIME]
                                [--waves 1%,10%,100%] [--halt-above PCT] [--max-inflight N]
                                [--wave-timeout DUR] [--stream] [--tailor]
  campaign start|pause|resume|cancel ID
  campaign status [ID] [--json]
  simulate --nodes N --broker URL --dir DIR --keys PEM [--fail 1%] [--seed S] [--check ID]
                                N simulated meters (real node code) in one process
  simulate release --key KEY -o FILE   the release the simulated fleet takes

Every command takes --db (SQLite file or postgres:// URL, default headend.db,
or $HEADEND_DB) and --packages (the package directory, default packages).
`

// stdout is where commands print (a test reads it).
var stdout io.Writer = os.Stdout

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "headend:", err)
		os.Exit(1)
	}
}

type common struct {
	db, packages string
	json         bool
}

func flags(name string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	db := os.Getenv("HEADEND_DB")
	if db == "" {
		db = "headend.db"
	}
	fs.StringVar(&c.db, "db", db, "the store: an SQLite file or a postgres:// URL")
	fs.StringVar(&c.packages, "packages", "packages", "the package directory")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	return fs
}

// parse parses args, allowing flags after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("a command is needed")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "nodes", "node":
		return nodes(ctx, args[0], args[1:])
	case "campaign":
		return campaign(ctx, args[1:])
	case "simulate":
		return simulate(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func logger() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

func serve(ctx context.Context, args []string) error {
	var c common
	fs := flags("serve", &c)
	cfg := headend.Config{}
	verbose := fs.Bool("verbose", false, "log every recorded report")
	fs.StringVar(&cfg.HTTPAddr, "http", ":8080", "address of the package server, web page and read API")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the package server's URL as nodes reach it (default http://<http address>)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", ":1883", "address of the embedded MQTT broker")
	fs.StringVar(&cfg.BrokerURL, "broker", "", "an external broker instead: tcp://host:port or ssl://host:port")
	fs.StringVar(&cfg.ClientID, "client-id", "headend", "this instance's client id on the external broker (unique per instance)")
	fs.StringVar(&cfg.Shared, "shared", "", "shared-subscription group of instances sharing one fleet (e.g. headend)")
	fs.StringVar(&cfg.Username, "username", "", "external broker user name")
	fs.DurationVar(&cfg.Tick, "tick", time.Second, "how often campaigns step")
	fs.DurationVar(&cfg.ResendAfter, "resend-after", 30*time.Second, "publish a sent node's document again after this long without a report on its job")
	cert := fs.String("tls-cert", "", "TLS certificate (the embedded broker's, or the client's)")
	key := fs.String("tls-key", "", "TLS key")
	ca := fs.String("tls-ca", "", "TLS authorities (of clients for the embedded broker, of the external broker)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg.Log = logger()
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.Password = os.Getenv("HEADEND_BROKER_PASSWORD")
	cfg.DB, cfg.Packages = c.db, c.packages
	tc, err := headend.LoadTLS(*cert, *key, *ca, cfg.BrokerURL == "")
	if err != nil {
		return err
	}
	cfg.TLS = tc
	srv, err := headend.Serve(ctx, cfg)
	if err != nil {
		return err
	}
	attrs := []any{slog.String("http", srv.HTTPAddr.String()), slog.String("db", cfg.DB)}
	if srv.MQTTAddr != nil {
		attrs = append(attrs, slog.String("mqtt", srv.MQTTAddr.String()))
	} else {
		attrs = append(attrs, slog.String("broker", cfg.BrokerURL))
	}
	cfg.Log.Info("head-end serving", attrs...)
	<-ctx.Done()
	return srv.Close()
}

func open(ctx context.Context, c common) (headend.Store, error) {
	return headend.Open(ctx, c.db, time.Now)
}

func printJSON(v any) error {
	e := json.NewEncoder(stdout)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

func nodes(ctx context.Context, cmd string, args []string) error {
	var c common
	fs := flags(cmd, &c)
	devType := fs.String("device-type", "", "node ID: record its device type (nodes report none; their update requests do)")
	reset := fs.Bool("reset-seq", false, "node ID: forget its last report seq (a replaced node, or one whose counter started again)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	s, err := open(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	if cmd == "nodes" {
		ns, err := s.Nodes(ctx)
		if err != nil {
			return err
		}
		if c.json {
			if ns == nil {
				ns = []headend.Node{}
			}
			return printJSON(ns)
		}
		return headend.WriteNodes(stdout, ns)
	}
	if len(pos) != 1 {
		return errors.New("usage: headend node ID [--reset-seq]")
	}
	if *devType != "" {
		if err := s.SetDeviceType(ctx, pos[0], *devType); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %s: device type %s\n", pos[0], *devType)
		return nil
	}
	if *reset {
		if err := s.ResetSeq(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %s: its next report is recorded whatever its seq\n", pos[0])
		return nil
	}
	n, err := s.Node(ctx, pos[0])
	if err != nil {
		return err
	}
	h, err := s.History(ctx, pos[0])
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(struct {
			Node    headend.Node     `json:"node"`
			History []headend.Report `json:"history"`
		}{n, h})
	}
	return headend.WriteHistory(stdout, n, h)
}

func campaign(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: headend campaign create|start|pause|resume|cancel|status")
	}
	var c common
	fs := flags("campaign "+args[0], &c)
	id := fs.String("id", "", "the campaign's id (the job id nodes see), 1-64 of [A-Za-z0-9._-]")
	sel := fs.String("select", "", "which nodes: device_type=T,version=V,id=PREFIX")
	activate := fs.String("activate", "now", "now, command, or an RFC 3339 time")
	waves := fs.String("waves", "100%", "cumulative wave sizes, e.g. 1%,10%,100%")
	var halt percentFlag
	fs.Var(&halt, "halt-above", "halt when failures pass this percentage of the started nodes, as 2% or 2 (0: never)")
	inflight := fs.Int("max-inflight", 100, "nodes sent their job and not finished, at most")
	timeout := fs.Duration("wave-timeout", headend.DefaultWaveTimeout, "a node silent this long is unreachable")
	stream := fs.Bool("stream", false, "deliver the package in-band (MQTT block stream) instead of by URL")
	tailor := fs.Bool("tailor", false, "send the manifest; answer each node's request with the package tailored for its version group")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	s, err := open(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	m := &headend.Campaigns{Store: s, Packages: &headend.Packages{Dir: c.packages}, Log: logger(), Now: time.Now}
	one := func() (string, error) {
		if len(pos) != 1 {
			return "", fmt.Errorf("usage: headend campaign %s ID", args[0])
		}
		return pos[0], nil
	}
	switch args[0] {
	case "create":
		if len(pos) != 1 {
			return errors.New("usage: headend campaign create PACKAGE --id ID [flags]")
		}
		w, err := headend.ParseWaves(*waves)
		if err != nil {
			return err
		}
		if *id == "" {
			*id = strings.TrimSuffix(pos[0], ".pkg")
		}
		cp, err := m.Create(ctx, headend.Campaign{ID: *id, Package: pos[0], Select: *sel, Activate: *activate,
			Waves: w, HaltAbove: float64(halt), MaxInflight: *inflight, WaveTimeout: *timeout, Stream: *stream, Tailor: *tailor})
		if err != nil {
			return err
		}
		st, err := m.Status(ctx, cp.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s created: %d nodes in %d waves; start it with: headend campaign start %s\n", cp.ID, st.Total, len(cp.Waves), cp.ID)
		return nil
	case "start", "pause", "resume", "cancel":
		cid, err := one()
		if err != nil {
			return err
		}
		op := map[string]func(context.Context, string) error{"start": m.Start, "pause": m.Pause, "resume": m.Resume, "cancel": m.Cancel}[args[0]]
		if err := op(ctx, cid); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s: %s\n", cid, args[0])
		return nil
	case "status":
		var ids []string
		if len(pos) == 1 {
			ids = pos
		} else {
			cs, err := s.Campaigns(ctx)
			if err != nil {
				return err
			}
			for _, cp := range cs {
				ids = append(ids, cp.ID)
			}
		}
		var all []headend.Status
		for _, cid := range ids {
			st, err := m.Status(ctx, cid)
			if err != nil {
				return err
			}
			all = append(all, st)
		}
		if c.json {
			if all == nil {
				all = []headend.Status{}
			}
			return printJSON(all)
		}
		tty := false
		if f, ok := stdout.(*os.File); ok {
			fi, _ := f.Stat()
			tty = fi != nil && fi.Mode()&os.ModeCharDevice != 0
		}
		for _, st := range all {
			headend.WriteStatus(stdout, st, tty)
		}
		return nil
	}
	return fmt.Errorf("unknown campaign command %q", args[0])
}

// percentFlag is a percentage given as "2%" or "2", from 0 to 100.
type percentFlag float64

func (p *percentFlag) String() string { return strconv.FormatFloat(float64(*p), 'g', -1, 64) + "%" }

func (p *percentFlag) Set(s string) error {
	v, err := parsePercent(s)
	if err != nil {
		return err
	}
	*p = percentFlag(v * 100)
	return nil
}
