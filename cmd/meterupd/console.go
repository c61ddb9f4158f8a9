package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"

	"meterupd/console"
	"meterupd/localapi"
)

func init() {
	register(&command{name: "console", usage: "--port DEV [--baud N] | --stdio [--json] [--idle D]: the technician's console (a client of the daemon)", run: runConsole})
}

// stdio joins standard input and output into one line (getty-style). Its
// input is opened again from /dev/stdin so that reads take deadlines.
type stdio struct {
	in  *os.File
	out io.Writer
}

func (s *stdio) Read(p []byte) (int, error)        { return s.in.Read(p) }
func (s *stdio) Write(p []byte) (int, error)       { return s.out.Write(p) }
func (s *stdio) Close() error                      { return s.in.Close() }
func (s *stdio) SetReadDeadline(t time.Time) error { return s.in.SetReadDeadline(t) }

func runConsole(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	dev := fs.String("port", "", "serial device of the console (e.g. /dev/ttymxc1, the optical probe's UART)")
	baud := fs.Int("baud", 9600, "baud rate of --port")
	useStdio := fs.Bool("stdio", false, "serve the console on standard input and output (getty, tests)")
	asJSON := fs.Bool("json", false, "answer in JSON (one object a line) from the start")
	idle := fs.Duration("idle", console.DefaultIdle, "idle time after which a session is logged out")
	noEcho := fs.Bool("no-echo", false, "do not echo typed characters (the terminal echoes locally)")
	if _, err := parseArgs(fs, env, args); err != nil {
		return err
	}
	if (*dev == "") == !*useStdio {
		return usageError{"console: give --port DEV or --stdio"}
	}
	var rw io.ReadWriter
	if *useStdio {
		in, err := os.OpenFile("/dev/stdin", os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer in.Close()
		if restore, err := rawTerminal(int(in.Fd())); err == nil {
			defer restore()
		}
		rw = &stdio{in: in, out: env.stdout}
	} else {
		p, err := serial.Open(*dev, &serial.Mode{BaudRate: *baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
		if err != nil {
			return fmt.Errorf("console: %s: %w", *dev, err)
		}
		defer p.Close()
		rw = p
	}
	cfg := env.config()
	c := &console.Console{
		Port: rw,
		Dial: func(ctx context.Context) (console.Caller, error) {
			return localapi.Dial(ctx, cfg.SocketPath(), "meterupd console")
		},
		StoreDir: cfg.StorePath(),
		Free:     storeFree,
		Idle:     *idle,
		JSON:     *asJSON,
		Echo:     !*noEcho,
		Exit:     *useStdio,
		Logger:   env.logger(),
	}
	err := c.Serve(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
