package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"meterupd/agent"
	"meterupd/audit"
	"meterupd/boards/hw"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/mqttlink"
	"meterupd/node"
	"meterupd/validate"
)

func init() {
	register(&command{name: "status", usage: "[--json] slots, boot control, update in progress, last result", run: cmdStatus})
	register(&command{name: "install", usage: "PACKAGE [--no-activate | --activate-at TIME] [--commit-trial] install a signed package; or FILE --sha256 HEX --version V [--delta] (development path)", run: cmdInstall})
	register(&command{name: "request", usage: "[PACKAGE|MANIFEST] [--json] the software update request this node would send", run: cmdRequest})
	register(&command{name: "activate", usage: "[--force] reboot into an installed set (after install --no-activate); registered processes may veto it, --force overrides", run: cmdActivate})
	register(&command{name: "schedule", usage: "TIME | --cancel set or move (TIME, RFC 3339 UTC) or cancel the installed set's activation time", run: cmdSchedule})
	register(&command{name: "rollback", usage: "[--reason TEXT] go back to the previous set", run: cmdRollback})
	register(&command{name: "commit", usage: "confirm the set on trial now (after its health checks pass)", run: cmdCommit})
	register(&command{name: "audit", usage: "[--json] [--verify] the legal audit log: every update event, hash-chained; --verify fails when the chain is broken", run: cmdAudit})
	register(&command{name: "journal", usage: "[--json] print the journal's records, oldest first", run: cmdJournal})
	register(&command{name: "run", usage: "[--once] [--socket-group G] the daemon: reconcile the booted set, drive the update, serve the local API", run: cmdRun})
	register(&command{name: "events", usage: "[--json] follow the daemon's state changes live", run: cmdEvents})
	register(&command{name: "version", usage: "[--json] version, commit, Go version, board", run: cmdVersion})
}

func parseFlags(fs *flag.FlagSet, env *cmdEnv, args []string) error {
	_, err := parseArgs(fs, env, args)
	return err
}

// parseArgs parses flags wherever they stand among the arguments (as
// technicians type them: `install FILE --sha256 …`) and returns the
// positional arguments. --help prints the command's usage to standard
// output and ends the command with flag.ErrHelp (exit status 0).
func parseArgs(fs *flag.FlagSet, env *cmdEnv, args []string) ([]string, error) {
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		name := strings.Fields(fs.Name())[0]
		fmt.Fprintf(env.stdout, "usage: meterupd %s", fs.Name())
		if c := commands[name]; c != nil {
			fmt.Fprintf(env.stdout, " %s", c.usage)
		}
		fmt.Fprintln(env.stdout)
		fs.SetOutput(env.stdout)
		fs.PrintDefaults()
		fs.SetOutput(env.stderr)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// do runs one command of the table and prints the checks of a refusal.
func do(ctx context.Context, env *cmdEnv, req localapi.Request, out any) error {
	c, err := env.caller(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	p := &progress{w: env.stdout}
	err = c.call(ctx, req, p.event, out)
	var we *localapi.Error
	if errors.As(err, &we) && len(we.Checks) > 0 {
		printChecks(env.stdout, we.Checks)
	}
	return err
}

// progress prints the phases and the progress of a command, in tenths.
type progress struct {
	w     io.Writer
	state string
	tenth int64
}

func (p *progress) event(ev localapi.Event) {
	st := ev.Status
	if ev.Kind != "state" {
		return // a reboot is part of the command's outcome
	}
	if st.State != p.state {
		p.state, p.tenth = st.State, -1
		if st.State == agent.StateInstalling || st.State == agent.StateDownloaded {
			return
		}
	}
	if st.State == agent.StateInstalling && st.Progress != nil && st.Progress.Total > 0 {
		t := 10 * st.Progress.Done / st.Progress.Total
		if t != p.tenth && t > 0 {
			p.tenth = t
			fmt.Fprintf(p.w, "  writing slot %s: %d%% (%d of %d bytes)\n", st.Update.Target, 10*t, st.Progress.Done, st.Progress.Total)
		}
	}
}

func cmdStatus(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	var st agent.Status
	c, err := env.caller(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.call(ctx, localapi.Request{Cmd: "status"}, nil, &st); err != nil {
		return err
	}
	if *asJSON {
		e := json.NewEncoder(env.stdout)
		e.SetIndent("", "  ")
		return e.Encode(st)
	}
	printStatus(env.stdout, st)
	return nil
}

func printStatus(w io.Writer, st agent.Status) {
	fmt.Fprintf(w, "board %s, running slot %s (primary %s), meterupd %s\n", st.Board, st.Running.Slot, st.Primary, dash(st.Agent))
	for _, p := range st.Problems {
		fmt.Fprintf(w, "CONFIGURATION PROBLEM: %s; signed installs are refused\n", p)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tROLE\tSTATE\tVERSION\tSHA-256\tNOTE")
	for _, s := range []hw.Slot{hw.SlotA, hw.SlotB, hw.SlotF} {
		ss := st.Slots[s]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s, ss.Role, ss.State, dash(ss.Version), shortSHA(ss.SHA256), ss.Reason)
	}
	tw.Flush()
	var order []string
	for _, s := range st.Boot.Order {
		order = append(order, fmt.Sprintf("%s (%d attempts left)", s, st.Boot.Left[s]))
	}
	order = append(order, "F")
	fmt.Fprintf(w, "boot order: %s\n", strings.Join(order, ", "))
	if u := st.Update; u != nil {
		var done, total int64
		if st.Progress != nil {
			done, total = st.Progress.Done, st.Progress.Total
		}
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(w, "update %s: %s, version %s into slot %s, %.0f%% written (%d of %d bytes)", st.Job, u.Phase, u.Version, u.Target, pct, done, total)
		if st.Reason != "" {
			fmt.Fprintf(w, " — %s", st.Reason)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "update: none in progress")
	}
	if l := st.Last; l != nil {
		fmt.Fprintf(w, "last result: %s", l.Code)
		if l.Version != "" {
			fmt.Fprintf(w, ", running version %s in slot %s", l.Version, l.Slot)
		}
		if l.Reason != "" {
			fmt.Fprintf(w, " — %s", l.Reason)
		}
		fmt.Fprintln(w)
	}
	if v := st.Components["modem"]; v != "" {
		fmt.Fprintf(w, "modem firmware: %s\n", v)
	}
	if v := st.Components["file"]; v != "" {
		fmt.Fprintf(w, "file items: version %s\n", v)
	}
	for _, p := range st.Pending {
		fmt.Fprintf(w, "component %s (%s %s): %s\n", p.ID, p.Component, p.Version, dash(p.Step))
	}
	if r := st.Radio; r != nil {
		reg := "not registered"
		if r.Registered {
			reg = "registered"
		}
		sig := "signal unknown"
		if r.SignalDBm != nil {
			sig = fmt.Sprintf("signal %d dBm", *r.SignalDBm)
		}
		if r.Manufacturer == "" && r.Error != "" {
			fmt.Fprintf(w, "radio: not answering — %s\n", r.Error)
		} else {
			fmt.Fprintf(w, "radio: %s %s, firmware %s, %s, %s\n", r.Manufacturer, r.Model, r.Firmware, reg, sig)
		}
	}
	if len(st.Checks) > 0 {
		fmt.Fprintln(w, "validation of the last package:")
		printChecks(w, st.Checks)
	}
	fmt.Fprintf(w, "journal: record %d; package sequence floor %d\n", st.Journal.Seq, st.Floor)
}

func cmdInstall(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	sha := fs.String("sha256", "", "expected SHA-256 of the image (hex)")
	ver := fs.String("version", "", "version of the image")
	id := fs.String("id", "", "job id to report (default: derived from the digest)")
	noAct := fs.Bool("no-activate", false, "install only; activate later with `meterupd activate`")
	commitTrial := fs.Bool("commit-trial", false, "a set on trial is committed first (otherwise an install during a trial is refused)")
	isDelta := fs.Bool("delta", false, "the files are a delta chain from the running set, in apply order")
	srcSHA := fs.String("source-sha256", "", "with --delta: SHA-256 the running set must have")
	maxDefer := fs.Duration("max-defer", 0, "bound the deferral of the activation by vetoes (default: the agent's, 24h)")
	force := fs.Bool("force", false, "activate without asking the registered processes (recorded as forced)")
	activateAt := fs.String("activate-at", "", "schedule the activation at `TIME` (RFC 3339, e.g. 2026-12-01T02:00:00Z) instead of activating now")
	rest, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 && !(*isDelta && len(rest) > 0) {
		return usageError{"install takes a signed package (meterupd install PACKAGE), or an image: meterupd install FILE --sha256 HEX --version V (or --delta DELTA…)"}
	}
	isPkg := len(rest) == 1 && !*isDelta && agent.IsPackage(rest[0])
	if !isPkg && (*sha == "" || *ver == "") {
		return usageError{"install needs a signed package, or an image with --sha256 HEX and --version V"}
	}
	paths, err := absPaths(rest)
	if err != nil {
		return err
	}
	req := localapi.Request{Cmd: "install", Paths: paths, SHA256: *sha, Version: *ver, Job: *id, Delta: *isDelta, SourceSHA256: *srcSHA, NoActivate: *noAct, CommitTrial: *commitTrial, ActivateAt: *activateAt,
		MaxDeferS: int64(*maxDefer / time.Second), Force: *force}
	var o localapi.Outcome
	if err := do(ctx, env, req, &o); err != nil {
		return err
	}
	printOutcome(env, o)
	return nil
}

// printOutcome prints the sentence of a command that changed the node.
func printOutcome(env *cmdEnv, o localapi.Outcome) {
	printChecks(env.stdout, o.Checks)
	if o.Message != "" {
		fmt.Fprintln(env.stdout, o.Message)
	}
	if o.Rebooted {
		if env.viaDaemon {
			fmt.Fprintf(env.stdout, "node rebooted: the bootloader started slot %s; the daemon carries on (meterupd events follows it)\n", o.Booted)
		} else {
			fmt.Fprintf(env.stdout, "node rebooted: the bootloader started slot %s; the agent continues when it starts (meterupd run)\n", o.Booted)
		}
	}
}

func simpleCmd(name, help string) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		reason := fs.String("reason", "", help)
		var force *bool
		if name == "activate" {
			force = fs.Bool("force", false, "activate without asking the registered processes (recorded as forced)")
		}
		pos, err := parseArgs(fs, env, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageError{name + " takes no arguments"}
		}
		var o localapi.Outcome
		req := localapi.Request{Cmd: name, Reason: *reason}
		if force != nil {
			req.Force = *force
		}
		if err := do(ctx, env, req, &o); err != nil {
			return err
		}
		printOutcome(env, o)
		return nil
	}
}

// cmdSchedule sets, moves or cancels the activation time (issue 13).
func cmdSchedule(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("schedule", flag.ContinueOnError)
	cancel := fs.Bool("cancel", false, "cancel the activation time: the set waits for `meterupd activate`")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if *cancel == (len(pos) == 1) || len(pos) > 1 {
		return usageError{"schedule takes a time (RFC 3339, e.g. 2026-12-01T02:00:00Z) or --cancel"}
	}
	req := localapi.Request{Cmd: "schedule"}
	if len(pos) == 1 {
		req.ActivateAt = pos[0]
	}
	var o localapi.Outcome
	if err := do(ctx, env, req, &o); err != nil {
		return err
	}
	printOutcome(env, o)
	return nil
}

var (
	cmdActivate = simpleCmd("activate", "unused")
	cmdRollback = simpleCmd("rollback", "why (recorded and reported)")
	cmdCommit   = simpleCmd("commit", "unused")
)

// cmdAudit prints the legal audit log and its chain's verdict (issue 13).
func cmdAudit(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the records and the verification as one JSON document")
	verify := fs.Bool("verify", false, "exit with an error when the chain does not verify")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	var l audit.Listing
	if err := do(ctx, env, localapi.Request{Cmd: "audit"}, &l); err != nil {
		return err
	}
	var err error
	if *asJSON {
		err = audit.WriteJSON(env.stdout, l.Records, l.Verify)
	} else {
		err = audit.WriteText(env.stdout, l.Records, l.Verify)
	}
	if err != nil {
		return err
	}
	if *verify && !l.Verify.OK() {
		return fmt.Errorf("audit: %s", audit.Verdict(l.Verify))
	}
	return nil
}

func cmdJournal(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("journal", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per record")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	var hist []agent.HistoryEntry
	if err := do(ctx, env, localapi.Request{Cmd: "journal"}, &hist); err != nil {
		return err
	}
	enc := json.NewEncoder(env.stdout)
	for _, e := range hist {
		if *asJSON {
			if err := enc.Encode(e); err != nil {
				return err
			}
			continue
		}
		if e.Record == nil {
			fmt.Fprintf(env.stdout, "#%d area %d: undecodable: %s\n", e.Seq, e.Area, e.Err)
			continue
		}
		fmt.Fprintf(env.stdout, "#%d area %d +%d: %s\n", e.Seq, e.Area, e.Offset, summarize(e.Record))
	}
	return nil
}

func summarize(r *agent.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "primary %s;", r.Primary)
	for _, s := range []hw.Slot{hw.SlotA, hw.SlotB, hw.SlotF} {
		if si := r.Slots[s]; si != nil {
			fmt.Fprintf(&b, " %s=%s", s, si.State)
			if si.Version != "" {
				fmt.Fprintf(&b, "(%s)", si.Version)
			}
		}
	}
	if u := r.Update; u != nil {
		fmt.Fprintf(&b, "; update %s %s → %s %s", u.ID, u.Phase, u.Target, u.Item.Version)
		if u.Phase == agent.Installing {
			fmt.Fprintf(&b, " %d/%d", u.Written, u.Item.Size)
		}
		if u.Reason != "" {
			fmt.Fprintf(&b, " (%s)", u.Reason)
		}
	}
	if c := r.Comp; c != nil { // issue 15: the package's modem and file items
		fmt.Fprintf(&b, "; components %s", c.ID)
		if c.Undo != nil {
			b.WriteString(" (undo)")
		}
		for _, it := range c.Items {
			fmt.Fprintf(&b, " %s=%s", it.ID, componentStep(it))
		}
	}
	if l := r.Last; l != nil {
		fmt.Fprintf(&b, "; last %s %s", l.Code, l.Version)
	}
	if r.ModemVersion != "" {
		fmt.Fprintf(&b, "; modem %s", r.ModemVersion)
	}
	return b.String()
}

// componentStep is where one component item of a package stands, for the
// journal's summary.
func componentStep(it agent.ComponentItem) string {
	phase := func(st *hw.ModemStep) string {
		if st == nil || st.Phase == "" {
			return "new"
		}
		return string(st.Phase)
	}
	switch rv := it.Revert; {
	case rv != nil && rv.Done:
		return "rolled-back"
	case rv != nil && rv.Err != "":
		return "kept"
	case rv != nil && rv.Step != nil:
		return "reverting:" + phase(rv.Step)
	case it.Done:
		return "done"
	case it.Modem != nil:
		return phase(it.Modem)
	}
	return "pending"
}

// cmdRun is the daemon (node.Daemon); with --once it reconciles the booted
// set, drives the update in progress to rest and exits, without serving.
func cmdRun(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	once := fs.Bool("once", false, "exit when the node is at rest instead of staying up")
	group := fs.String("socket-group", "", "group given access to the local API socket (default: root only)")
	var lc mqttlink.Config
	fs.StringVar(&lc.Broker, "mqtt", "", "the head-end's MQTT broker: tcp://HOST:PORT or ssl://HOST:PORT (default: link.json)")
	fs.StringVar(&lc.ID, "id", "", "the node's id in the MQTT topics (default: link.json)")
	fs.StringVar(&lc.CA, "mqtt-ca", "", "PEM file of the broker's certificate authority (ssl://)")
	fs.StringVar(&lc.Cert, "mqtt-cert", "", "PEM file of the node's client certificate (ssl://)")
	fs.StringVar(&lc.Key, "mqtt-key", "", "PEM file of the node's client key (ssl://)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := env.resolveBoard(); err != nil {
		return err
	}
	if *once {
		return runOnce(ctx, env)
	}
	cfg := env.config()
	cfg.SocketGroup = *group
	d := node.NewDaemon(cfg)
	sd := node.NewNotifier(os.Getenv)
	d.Ready = func(st agent.Status) {
		printResult(env.stdout, st)
		sd.Ready()
	}
	d.Alive = sd.Alive
	if iv := sd.WatchdogInterval(); iv > 0 {
		d.AliveEvery = iv / 4 // an idle owner shows life too
	}
	stopWatchdog := sd.Watchdog(ctx)
	defer stopWatchdog()
	d.Rebooted = func(msg string) { fmt.Fprintln(env.stdout, msg) }
	link, err := headEndLink(env, cfg, d, lc)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	lctx, stopLink := context.WithCancel(ctx)
	if link != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := link.Run(lctx); err != nil {
				fmt.Fprintln(env.stderr, "meterupd: head-end link:", err)
			}
		}()
	}
	err = d.Run(ctx)
	stopLink()
	wg.Wait()
	sd.Stopping()
	return err
}

// headEndLink is the MQTT link the flags or link.json ask for, or nil.
func headEndLink(env *cmdEnv, cfg node.Config, d *node.Daemon, lc mqttlink.Config) (*mqttlink.Link, error) {
	fc, err := mqttlink.ReadFileConfig(cfg.ConfigPath("link.json"))
	if err != nil {
		return nil, err
	}
	fc.Apply(&lc)
	if lc.Broker == "" && lc.ID == "" {
		return nil, nil
	}
	lc.Node, lc.StoreDir, lc.Agent, lc.Logger = d, cfg.StorePath(), node.Version().Version, env.logger()
	l, err := mqttlink.New(lc)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return l, nil
}

// runOnce starts the agent until the node is at rest; a reboot of the sim
// board starts it again, as init would.
func runOnce(ctx context.Context, env *cmdEnv) error {
	const maxBoots = 16 // a sim node rebooting more often than this in one run is looping
	for boot := 0; ; boot++ {
		n, err := node.Open(env.config())
		if err != nil {
			return err
		}
		err = n.Start(ctx)
		if errors.Is(err, hw.ErrRebooted) && boot < maxBoots {
			fmt.Fprintf(env.stdout, "node rebooted: the bootloader started slot %s\n", n.Booted())
			n.Close()
			continue
		}
		if err != nil {
			n.Close()
			return err
		}
		st, err := n.Status(ctx)
		n.Close()
		if err != nil {
			return err
		}
		printResult(env.stdout, st)
		return nil
	}
}

func printResult(w io.Writer, st agent.Status) {
	fmt.Fprintf(w, "agent at rest on slot %s", st.Running.Slot)
	if u := st.Update; u != nil {
		fmt.Fprintf(w, "; update %s %s", st.Job, u.Phase)
	} else if l := st.Last; l != nil {
		fmt.Fprintf(w, "; last result: %s", l.Code)
		if l.Reason != "" {
			fmt.Fprintf(w, " — %s", l.Reason)
		}
	}
	fmt.Fprintln(w)
}

// cmdEvents follows the daemon's events until interrupted.
func cmdEvents(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := env.resolveBoard(); err != nil {
		return err
	}
	cfg := env.config()
	c, err := localapi.Dial(ctx, cfg.SocketPath(), "meterupd "+node.Version().Version)
	if errors.Is(err, localapi.ErrNoDaemon) {
		return fmt.Errorf("no daemon runs on this node (start it with `meterupd run`): %w", err)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	enc := json.NewEncoder(env.stdout)
	err = c.Call(ctx, localapi.Request{Cmd: "events"}, func(ev localapi.Event) {
		if *asJSON {
			enc.Encode(ev)
			return
		}
		fmt.Fprintln(env.stdout, eventLine(ev))
	}, nil)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// eventLine is one event in a line a person reads.
func eventLine(ev localapi.Event) string {
	st := ev.Status
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s: %s", ev.Seq, ev.Kind, st.State)
	if st.Job != "" {
		fmt.Fprintf(&b, " job %s", st.Job)
	}
	if p := st.Progress; p != nil && st.Update != nil && p.Total > 0 && (st.State == agent.StateInstalling || st.State == agent.StateDownloaded) {
		fmt.Fprintf(&b, " %d/%d bytes (%d%%)", p.Done, p.Total, 100*p.Done/p.Total)
	}
	if st.Result != agent.ResultNone {
		fmt.Fprintf(&b, " result %d", st.Result)
	}
	fmt.Fprintf(&b, "; running %s %s", st.Running.Slot, dash(st.Running.Version))
	if ev.Message != "" {
		fmt.Fprintf(&b, " — %s", ev.Message)
	} else if st.Reason != "" {
		fmt.Fprintf(&b, " — %s", st.Reason)
	}
	return b.String()
}

// cmdVersion prints this meterupd's version and, when a daemon runs, the
// daemon's.
func cmdVersion(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	v := node.Version()
	v.Board = env.board
	var daemon *localapi.VersionInfo
	if env.board != "" || env.state != "" || env.socket != "" {
		cfg := env.config()
		if cfg.Resolve() == nil {
			v.Board = cfg.Board
			if c, err := localapi.Dial(ctx, cfg.SocketPath(), "meterupd "+v.Version); err == nil {
				var dv localapi.VersionInfo
				if c.Call(ctx, localapi.Request{Cmd: "version"}, nil, &dv) == nil {
					daemon = &dv
				}
				c.Close()
			}
		}
	}
	if *asJSON {
		e := json.NewEncoder(env.stdout)
		e.SetIndent("", "  ")
		return e.Encode(struct {
			localapi.VersionInfo
			Daemon *localapi.VersionInfo `json:"daemon,omitempty"`
		}{v, daemon})
	}
	fmt.Fprintf(env.stdout, "meterupd %s\ncommit %s\n%s\nboard %s\nlocal API protocol %d\n", v.Version, dash(v.Commit), v.Go, dash(v.Board), v.Proto)
	if daemon != nil {
		fmt.Fprintf(env.stdout, "daemon: meterupd %s (commit %s, %s), protocol %d\n", daemon.Version, dash(daemon.Commit), daemon.Go, daemon.Proto)
	}
	return nil
}

func printChecks(w io.Writer, rs []validate.Result) {
	for _, r := range rs {
		var parts []string
		for _, o := range r.Outcomes {
			mark := "ok"
			if o.Passed && (o.Check == "install" || o.Check == "restore") && o.Detail != "" {
				mark += " (" + o.Detail + ")" // what became of a component item (issue 15)
			}
			if !o.Passed {
				mark = "FAILED"
				if o.Detail != "" {
					mark += " (" + o.Detail + ")"
				}
			}
			parts = append(parts, o.Check+" "+mark)
		}
		fmt.Fprintf(w, "  item %s: level %d (%s): %s\n", r.Item, int(r.Level), r.Level, strings.Join(parts, ", "))
	}
}

// cmdRequest prints the update request (direct: it needs the agent's
// keyring and facts, not a command of the table).
func cmdRequest(_ context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"request takes at most one package or manifest"}
	}
	if err := env.resolveBoard(); err != nil {
		return err
	}
	n, err := node.Open(env.config())
	if err != nil {
		return err
	}
	defer n.Close()
	var m *manifest.Manifest
	if len(pos) == 1 {
		keys, err := n.Agent().Keyring()
		if err != nil {
			return err
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if m, err = manifest.ReadManifest(f, keys); err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
	}
	req, err := n.Agent().Request(m)
	if err != nil {
		return err
	}
	e := json.NewEncoder(env.stdout)
	e.SetIndent("", "  ")
	return e.Encode(req)
}
