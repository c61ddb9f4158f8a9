package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"meterupd/boards/modem"
)

func init() {
	register(&command{name: "modem", usage: "[--port DEV] [--baud N] [--json] the radio module: identity, firmware, registration, signal", run: cmdModem})
}

// modemReport is what `meterupd modem` prints.
type modemReport struct {
	Port string `json:"port"`
	modem.Status
	Linked bool   `json:"linked"`
	Why    string `json:"why,omitempty"` // why not linked
	// Lines is the state of the modem-control inputs, absent on a port
	// without them.
	Lines *modem.Lines `json:"lines,omitempty"`
}

func cmdModem(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("modem", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	port := fs.String("port", os.Getenv("METERUPD_MODEM_PORT"), "the module's AT port (default $METERUPD_MODEM_PORT)")
	baud := fs.Int("baud", modem.DefaultBaud, "UART speed")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after this long")
	asJSON := fs.Bool("json", false, "print JSON")
	verbose := fs.Bool("v", false, "log the dialogue's events to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("modem takes no arguments, got %q", fs.Args())}
	}
	if *port == "" {
		return usageError{"modem: no port: pass --port /dev/ttyX or set METERUPD_MODEM_PORT"}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg := modem.Config{
		Baud:   *baud,
		Logger: slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level})),
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	m, err := modem.Open(ctx, *port, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	st, err := m.Status(ctx)
	if err != nil {
		return fmt.Errorf("modem: %w", err)
	}
	rep := modemReport{Port: *port, Status: st}
	switch err := m.Linked(ctx); {
	case err == nil:
		rep.Linked = true
	case errors.Is(err, modem.ErrNotLinked):
		rep.Why = strings.TrimPrefix(err.Error(), modem.ErrNotLinked.Error()+": ")
	default:
		return fmt.Errorf("modem: %w", err)
	}
	if l, err := m.Lines(); err == nil {
		rep.Lines = &l
	}
	if *asJSON {
		e := json.NewEncoder(env.stdout)
		e.SetIndent("", "  ")
		return e.Encode(rep)
	}
	return printModem(env, rep)
}

func printModem(env *cmdEnv, r modemReport) error {
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "port\t%s\n", r.Port)
	fmt.Fprintf(w, "manufacturer\t%s\n", r.Identity.Manufacturer)
	fmt.Fprintf(w, "model\t%s\n", r.Identity.Model)
	if r.Identity.IMEI != "" {
		fmt.Fprintf(w, "imei\t%s\n", r.Identity.IMEI)
	}
	fmt.Fprintf(w, "firmware\t%s\n", r.Firmware)
	for _, d := range []struct {
		name string
		reg  *modem.Reg
	}{{"eps (AT+CEREG)", r.Registration.EPS}, {"cs (AT+CREG)", r.Registration.CS}} {
		if d.reg == nil {
			fmt.Fprintf(w, "%s\tunsupported\n", d.name)
			continue
		}
		s := d.reg.Stat.String()
		if d.reg.Area != "" || d.reg.Cell != "" {
			s += fmt.Sprintf(" (area %s, cell %s)", d.reg.Area, d.reg.Cell)
		}
		if d.reg.AcT >= 0 {
			s += fmt.Sprintf(" act %d", d.reg.AcT)
		}
		fmt.Fprintf(w, "%s\t%s\n", d.name, s)
	}
	if r.SignalDBm != nil {
		fmt.Fprintf(w, "signal\t%d dBm (rssi %d, ber %d)\n", *r.SignalDBm, r.Signal.RSSI, r.Signal.BER)
	} else {
		fmt.Fprintf(w, "signal\tunknown (rssi %d, ber %d)\n", r.Signal.RSSI, r.Signal.BER)
	}
	if r.Linked {
		fmt.Fprintf(w, "linked\tyes\n")
	} else {
		fmt.Fprintf(w, "linked\tno: %s\n", r.Why)
	}
	if r.Lines == nil {
		fmt.Fprintf(w, "control lines\tnone\n")
	} else {
		fmt.Fprintf(w, "control lines\tcts=%v dsr=%v dcd=%v ri=%v\n", r.Lines.CTS, r.Lines.DSR, r.Lines.DCD, r.Lines.RI)
	}
	return w.Flush()
}
