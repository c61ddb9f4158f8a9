package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.bug.st/serial"

	"meterupd/console"
	"meterupd/pkgbuild"
)

func init() {
	register(&command{name: "console", usage: "--port DEV --token TOKEN --key TECH.key.pem: log in on a meter's console", run: runConsole})
}

// runConsole logs in on the meter's console at the other end of a serial
// port (the challenge-response done for the technician); the session then
// stays with the port, for picocom or minicom to take over.
func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	dev := fs.String("port", "", "serial device to the meter (e.g. /dev/ttyUSB0, the optical probe)")
	baud := fs.Int("baud", 9600, "baud rate")
	tokPath := fs.String("token", "", "token file")
	keyPath := fs.String("key", "", "the technician's private key (PEM)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the meter's answers")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *dev == "" || *tokPath == "" || *keyPath == "" {
		return usageError{"usage: meterpkg console --port DEV --token TOKEN --key TECH.key.pem [--baud 9600] [--timeout 30s]"}
	}
	tok, err := os.ReadFile(*tokPath)
	if err != nil {
		return err
	}
	key, err := pkgbuild.LoadSigner(*keyPath)
	if err != nil {
		return err
	}
	p, err := serial.Open(*dev, &serial.Mode{BaudRate: *baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return fmt.Errorf("%s: %w", *dev, err)
	}
	defer p.Close()
	line, err := console.Login(ctx, p, tok, key, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, line)
	return nil
}
