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
	"text/tabwriter"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/journal"
	"meterupd/manifest"
	"meterupd/validate"
)

func init() {
	register(&command{name: "status", usage: "[--json] slots, boot control, update in progress, last result", run: cmdStatus})
	register(&command{name: "install", usage: "PACKAGE [--no-activate] install a signed package; or FILE --sha256 HEX --version V [--delta] (development path)", run: cmdInstall})
	register(&command{name: "request", usage: "[PACKAGE|MANIFEST] [--json] the software update request this node would send", run: cmdRequest})
	register(&command{name: "activate", usage: "reboot into an installed set (after install --no-activate)", run: cmdActivate})
	register(&command{name: "rollback", usage: "[--reason TEXT] go back to the previous set", run: cmdRollback})
	register(&command{name: "commit", usage: "confirm the set on trial now (after its health checks pass)", run: cmdCommit})
	register(&command{name: "journal", usage: "[--json] print the journal's records, oldest first", run: cmdJournal})
	register(&command{name: "run", usage: "[--once] the daemon: reconcile the booted set, drive the update, stay up", run: cmdRun})
}

func parseFlags(fs *flag.FlagSet, env *cmdEnv, args []string) error {
	_, err := parseArgs(fs, env, args)
	return err
}

// parseArgs parses flags wherever they stand among the arguments (as
// technicians type them: `install FILE --sha256 …`) and returns the
// positional arguments.
func parseArgs(fs *flag.FlagSet, env *cmdEnv, args []string) ([]string, error) {
	fs.SetOutput(env.stderr)
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

func cmdStatus(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	n, err := env.openNode()
	if err != nil {
		return err
	}
	defer n.close()
	st, err := n.agent.Status(ctx)
	if err != nil {
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
	fmt.Fprintf(w, "board %s, running slot %s (primary %s)\n", st.Board, st.Booted, st.Primary)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tROLE\tSTATE\tVERSION\tSHA-256\tNOTE")
	for _, s := range st.Slots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Slot, s.Role, s.State, dash(s.Version), shortSHA(s.SHA256), s.Reason)
	}
	tw.Flush()
	var order []string
	for _, s := range st.Boot.Order {
		order = append(order, fmt.Sprintf("%s (%d attempts left)", s, st.Boot.Left[s]))
	}
	order = append(order, "F")
	fmt.Fprintf(w, "boot order: %s\n", strings.Join(order, ", "))
	if u := st.Update; u != nil {
		fmt.Fprintf(w, "update %s: %s, version %s into slot %s, %.0f%% written (%d of %d bytes)", u.ID, u.Phase, u.Version, u.Target, 100*u.Progress, u.Written, u.Size)
		if u.Reason != "" {
			fmt.Fprintf(w, " — %s", u.Reason)
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
	if r := st.Radio; r != nil {
		if r.Modem == nil {
			fmt.Fprintf(w, "radio: not answering — %s\n", r.Error)
		} else {
			m := r.Modem
			reg := "not registered"
			if m.Registration.Registered() {
				reg = "registered"
			}
			sig := "signal unknown"
			if m.SignalDBm != nil {
				sig = fmt.Sprintf("signal %d dBm", *m.SignalDBm)
			}
			fmt.Fprintf(w, "radio: %s %s, firmware %s, %s, %s\n", m.Identity.Manufacturer, m.Identity.Model, m.Firmware, reg, sig)
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
	isDelta := fs.Bool("delta", false, "the files are a delta chain from the running set, in apply order")
	srcSHA := fs.String("source-sha256", "", "with --delta: SHA-256 the running set must have")
	rest, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 && !(*isDelta && len(rest) > 0) {
		return usageError{"install takes a signed package (meterupd install PACKAGE), or an image: meterupd install FILE --sha256 HEX --version V (or --delta DELTA…)"}
	}
	if len(rest) == 1 && !*isDelta && agent.IsPackage(rest[0]) {
		return installPackage(ctx, env, rest[0], !*noAct)
	}
	if *sha == "" || *ver == "" {
		return usageError{"install needs a signed package, or an image with --sha256 HEX and --version V"}
	}
	n, err := env.openNode()
	if err != nil {
		return err
	}
	defer n.close()
	if err := n.agent.Start(ctx); err != nil {
		return rebooted(env, n, err)
	}
	item := agent.InstallItem{Kind: agent.FullImage, Version: *ver, SHA256: *sha, Payloads: rest}
	if *isDelta {
		item.Kind, item.SourceSHA256 = agent.Delta, *srcSHA
	}
	err = n.agent.Install(ctx, agent.InstallRequest{ID: *id, Item: item, Activate: !*noAct})
	if err != nil && !errors.Is(err, hw.ErrRebooted) {
		return fmt.Errorf("install refused: %w", err)
	}
	if err == nil {
		fmt.Fprintf(env.stdout, "installed version %s into slot %s; activate it with `meterupd activate`\n", *ver, n.agent.Record().Update.Target)
		return nil
	}
	fmt.Fprintf(env.stdout, "installed and verified version %s; trial armed\n", *ver)
	return rebooted(env, n, err)
}

func simpleCmd(name string, do func(ctx context.Context, n *node) error, done string) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		reason := fs.String("reason", "", "why (recorded and reported)")
		pos, err := parseArgs(fs, env, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageError{name + " takes no arguments"}
		}
		n, err := env.openNode()
		if err != nil {
			return err
		}
		defer n.close()
		n.reason = *reason
		if err := do(ctx, n); err != nil {
			if errors.Is(err, hw.ErrRebooted) {
				fmt.Fprintln(env.stdout, done)
				return rebooted(env, n, err)
			}
			return fmt.Errorf("%s refused: %w", name, err)
		}
		fmt.Fprintln(env.stdout, done)
		return nil
	}
}

func cmdActivate(ctx context.Context, env *cmdEnv, args []string) error {
	return simpleCmd("activate", func(ctx context.Context, n *node) error { return n.agent.Activate(ctx) }, "trial armed")(ctx, env, args)
}

func cmdRollback(ctx context.Context, env *cmdEnv, args []string) error {
	return simpleCmd("rollback", func(ctx context.Context, n *node) error { return n.agent.Rollback(ctx, n.reason) }, "rollback started")(ctx, env, args)
}

func cmdCommit(ctx context.Context, env *cmdEnv, args []string) error {
	return simpleCmd("commit", func(ctx context.Context, n *node) error { return n.agent.Commit(ctx) }, "committed")(ctx, env, args)
}

func cmdJournal(_ context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("journal", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per record")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	n, err := env.openNode()
	if err != nil {
		return err
	}
	defer n.close()
	recs, err := n.agent.Journal().Records()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.stdout)
	for _, jr := range recs {
		var r agent.Record
		if err := journal.Decode(jr.Data, &r); err != nil {
			fmt.Fprintf(env.stdout, "#%d area %d: undecodable: %v\n", jr.Seq, jr.Area, err)
			continue
		}
		if *asJSON {
			if err := enc.Encode(struct {
				Seq    uint64        `json:"seq"`
				Area   int           `json:"area"`
				Offset int64         `json:"offset"`
				Record *agent.Record `json:"record"`
			}{jr.Seq, jr.Area, jr.Offset, &r}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(env.stdout, "#%d area %d +%d: %s\n", jr.Seq, jr.Area, jr.Offset, summarize(&r))
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
	if l := r.Last; l != nil {
		fmt.Fprintf(&b, "; last %s %s", l.Code, l.Version)
	}
	return b.String()
}

// cmdRun is the daemon. At start it reconciles the booted set with the
// journal and drives the update in progress; a reboot on the sim board
// starts the agent again, as init would on a meter.
func cmdRun(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	once := fs.Bool("once", false, "exit when the node is at rest instead of staying up")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	const maxBoots = 16 // a sim node rebooting more often than this in one run is looping
	for boot := 0; ; boot++ {
		n, err := env.openNode()
		if err != nil {
			return err
		}
		err = n.agent.Start(ctx)
		if errors.Is(err, hw.ErrRebooted) && boot < maxBoots {
			s, _ := n.board.Boot().Booted()
			fmt.Fprintf(env.stdout, "node rebooted: the bootloader started slot %s\n", s)
			n.close()
			continue
		}
		if err != nil {
			n.close()
			return err
		}
		st, err := n.agent.Status(ctx)
		if err == nil {
			printResult(env.stdout, st)
		}
		if *once {
			n.close()
			return nil
		}
		<-ctx.Done()
		n.close()
		return nil
	}
}

func printResult(w io.Writer, st agent.Status) {
	fmt.Fprintf(w, "agent at rest on slot %s", st.Booted)
	if u := st.Update; u != nil {
		fmt.Fprintf(w, "; update %s %s", u.ID, u.Phase)
	} else if l := st.Last; l != nil {
		fmt.Fprintf(w, "; last result: %s", l.Code)
		if l.Reason != "" {
			fmt.Fprintf(w, " — %s", l.Reason)
		}
	}
	fmt.Fprintln(w)
}

// installPackage installs a signed package (the production path).
func installPackage(ctx context.Context, env *cmdEnv, path string, activate bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := env.openNode()
	if err != nil {
		return err
	}
	defer n.close()
	if err := n.agent.Start(ctx); err != nil {
		return rebooted(env, n, err)
	}
	err = n.agent.InstallPackage(ctx, f, activate)
	var pe *agent.PackageError
	if errors.As(err, &pe) {
		printChecks(env.stdout, pe.Checks)
	}
	if err != nil && !errors.Is(err, hw.ErrRebooted) {
		return fmt.Errorf("install refused: %w", err)
	}
	rec := n.agent.Record()
	if rec.Update != nil {
		printChecks(env.stdout, rec.Update.Checks)
	}
	if err == nil {
		if rec.Update == nil {
			if rec.Last != nil {
				fmt.Fprintf(env.stdout, "package accepted: %s\n", rec.Last.Reason)
			}
			return nil
		}
		fmt.Fprintf(env.stdout, "installed version %s into slot %s; activate it with `meterupd activate`\n", rec.Update.Item.Version, rec.Update.Target)
		return nil
	}
	fmt.Fprintf(env.stdout, "signed package verified, version %s installed and verified; trial armed\n", rec.Update.Item.Version)
	return rebooted(env, n, err)
}

func printChecks(w io.Writer, rs []validate.Result) {
	for _, r := range rs {
		var parts []string
		for _, o := range r.Outcomes {
			mark := "ok"
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

func cmdRequest(_ context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"request takes at most one package or manifest"}
	}
	n, err := env.openNode()
	if err != nil {
		return err
	}
	defer n.close()
	var m *manifest.Manifest
	if len(pos) == 1 {
		keys, err := n.agent.Keyring()
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
	req, err := n.agent.Request(m)
	if err != nil {
		return err
	}
	e := json.NewEncoder(env.stdout)
	e.SetIndent("", "  ")
	return e.Encode(req)
}
