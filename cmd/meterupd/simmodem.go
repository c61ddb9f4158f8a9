//go:build !(arm || arm64) || sim

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"

	"meterupd/boards/modem/modemsim"
	"meterupd/boards/sim"
)

// simModem gives the simulated node a radio modem on a serial port (a real
// one, or a modem simulator's pseudo-terminal); "none" takes it away.
// --dialect says in which maker's dialect the module takes its firmware
// (without it the node's module is not updatable). --simulate runs the
// simulated module itself until interrupted (start it in the background):
// it opens a pseudo-terminal, links it at DIR/ttyMODEM and gives the node
// that port and dialect.
func simModem(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("sim modem", flag.ContinueOnError)
	dialect := fs.String("dialect", "", "the module's firmware dialect: "+fmt.Sprint(sim.ModemDialects))
	simulate := fs.String("simulate", "", "run a simulated module of this dialect: "+fmt.Sprint(sim.ModemDialects))
	revision := fs.String("revision", "", "with --simulate: the firmware revision the module runs at power-up (default: the dialect's)")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if *simulate != "" {
		if len(pos) != 0 || *dialect != "" {
			return usageError{"sim modem --simulate DIALECT takes no port and no --dialect"}
		}
		return simRunModem(ctx, env, *simulate, *revision)
	}
	if len(pos) != 1 {
		return usageError{"sim modem PORT|none [--dialect quectel|ublox]"}
	}
	if *revision != "" {
		return usageError{"--revision goes with --simulate"}
	}
	port := pos[0]
	if port == "none" {
		port, *dialect = "", ""
	}
	if *dialect != "" && !slices.Contains(sim.ModemDialects, *dialect) {
		return usageError{fmt.Sprintf("--dialect %q is not one of %v", *dialect, sim.ModemDialects)}
	}
	return setSimModem(env, port, *dialect)
}

func setSimModem(env *cmdEnv, port, dialect string) error {
	sb, done, err := env.openSim()
	if err != nil {
		return err
	}
	defer done()
	if err := sb.SetModemPort(port); err != nil {
		return err
	}
	return sb.SetModemDialect(dialect)
}

// simRunModem runs the simulated module of the dialect until ctx ends.
// The node is opened only to register the port, then closed: the module
// is a device of its own, and the daemon owns the node.
func simRunModem(ctx context.Context, env *cmdEnv, dialect, revision string) error {
	var d modemsim.Dialect
	switch dialect {
	case "quectel":
		d = modemsim.Quectel
	case "ublox":
		d = modemsim.UBlox
	default:
		return usageError{fmt.Sprintf("--simulate %q is not one of %v", dialect, sim.ModemDialects)}
	}
	if env.state == "" {
		return usageError{"sim modem --simulate needs --state DIR (the port's link goes there)"}
	}
	log := env.logger()
	m, err := modemsim.Start(modemsim.Options{Dialect: d, Dir: env.state, Revision: revision,
		Report: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := setSimModem(env, m.Path(), dialect); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "simulated %s module on %s, firmware %s\n", dialect, m.Path(), m.Revision())
	log.Info("simulated module runs", slog.String("port", m.Path()))
	<-ctx.Done()
	return nil
}
