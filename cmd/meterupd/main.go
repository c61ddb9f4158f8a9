// Command meterupd is the on-node update agent: the daemon (`meterupd run`)
// and the technician's subcommands, in one static binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers
// itself in init, so areas of the project add commands without touching
// this file.
type command struct {
	name  string
	usage string // one line: arguments and what it does
	run   func(ctx context.Context, env *cmdEnv, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("meterupd: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// cmdEnv is what every subcommand gets: the global flags and the streams.
type cmdEnv struct {
	board   string // --board
	state   string // --state (sim board: the state directory)
	store   string // --store (package store directory)
	socket  string // --socket (the daemon's local API)
	verbose bool   // -v
	// viaDaemon: the command was answered by the running daemon.
	viaDaemon bool
	stdout    io.Writer
	stderr    io.Writer
}

// memoryLimit is the agent's soft memory limit unless GOMEMLIMIT says
// otherwise: a meter has tens of MiB shared with metering, and the delta
// engine's frame decoding leaves garbage that must be collected before the
// heap grows (docs/delta.md: a 3-hop chain peaks at 16 MiB with it, 25
// without).
const memoryLimit = 12 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "meterupd:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "meterupd:", err)
		os.Exit(1)
	}
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := &cmdEnv{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("meterupd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&env.board, "board", os.Getenv("METERUPD_BOARD"), "board file to use: sim, a hardware board, or auto (from the device tree); default: sim with --state, else auto")
	fs.StringVar(&env.state, "state", os.Getenv("METERUPD_STATE"), "state directory of the sim board")
	fs.StringVar(&env.store, "store", "", "package store directory (default: in the sim state directory, or /var/lib/meterupd/store)")
	fs.StringVar(&env.socket, "socket", os.Getenv("METERUPD_SOCKET"), "the daemon's local API socket (default: meterupd.sock in the sim state directory, or /run/meterupd/meterupd.sock)")
	fs.BoolVar(&env.verbose, "v", false, "log every step to standard error")
	fs.Usage = func() { printUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		printUsage(stderr, fs)
		return usageError{"no command given"}
	}
	if env.board == "" && env.state != "" {
		env.board = "sim"
	}
	name := fs.Arg(0)
	c, ok := commands[name]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q (meterupd help lists them)", name)}
	}
	err := c.run(ctx, env, fs.Args()[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil // COMMAND --help printed the command's usage
	}
	return err
}

// resolveBoard settles --board auto (or no --board without --state) from
// the device tree, once, when a command first needs the board.
func (env *cmdEnv) resolveBoard() error {
	cfg := env.config()
	if err := cfg.Resolve(); err != nil {
		return err
	}
	env.board = cfg.Board
	return nil
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: meterupd [--board NAME] [--state DIR] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].usage)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs.PrintDefaults()
}

func init() {
	register(&command{name: "help", usage: "print this help", run: func(_ context.Context, env *cmdEnv, _ []string) error {
		fs := flag.NewFlagSet("meterupd", flag.ContinueOnError)
		printUsage(env.stdout, fs)
		return nil
	}})
}
