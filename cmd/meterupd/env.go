package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"meterupd/boards/hw"
	"meterupd/boards/mtd"
	"meterupd/boards/ubootenv"
)

func init() {
	register(&command{name: "env", usage: "print [-c CONFIG] [-n] [--json] [NAME...] | set [-c CONFIG] NAME=VALUE... the U-Boot environment, as fw_printenv/fw_setenv", run: cmdUBootEnv})
}

// errNoChange ends an env set that would write what is stored.
var errNoChange = errors.New("no change")

func cmdUBootEnv(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usageError{"env: want print or set"}
	}
	switch args[0] {
	case "print":
		return envPrint(env, args[1:])
	case "set":
		return envSet(env, args[1:])
	}
	return usageError{fmt.Sprintf("env: unknown subcommand %q (print, set)", args[0])}
}

func envFlags(env *cmdEnv, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("env "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	cfg := fs.String("c", ubootenv.DefaultConfigPath, "fw_env.config-style file naming where the environment is")
	return fs, cfg
}

func envParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return usageError{err.Error()}
	}
	return nil
}

// openEnv opens the environment the config file describes; MTD devices go
// through the MTD driver. It takes fw_setenv's lock file, so the two
// never write over the same copy at once.
func openEnv(path string) (*ubootenv.Store, error) {
	cfg, err := ubootenv.ReadConfig(path)
	if err != nil {
		return nil, err
	}
	return ubootenv.Open(cfg, ubootenv.WithLockFile(ubootenv.DefaultLockPath), ubootenv.WithFlashOpener(func(dev string) (hw.Flash, error) {
		d, err := mtd.OpenDevice(dev, false)
		if err != nil {
			return nil, err
		}
		f, err := mtd.New(d, dev)
		if err != nil {
			d.Close()
			return nil, err
		}
		return f, nil
	}))
}

func envPrint(env *cmdEnv, args []string) error {
	fs, cfg := envFlags(env, "print")
	noHeader := fs.Bool("n", false, "print the value only (one NAME)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := envParseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	names := fs.Args()
	if *noHeader && len(names) != 1 {
		return usageError{"env print: -n needs exactly one NAME"}
	}
	store, err := openEnv(*cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	vars, err := store.Load()
	if err != nil {
		if errors.Is(err, ubootenv.ErrNoValidCopy) {
			return fmt.Errorf("%w (U-Boot uses its built-in default environment)", err)
		}
		return err
	}
	if len(names) == 0 {
		// fw_printenv keeps .flags to itself.
		for _, n := range vars.Names() {
			if n != ".flags" {
				names = append(names, n)
			}
		}
	}
	var missing []string
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, ok := vars[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		out[n] = v
		switch {
		case *asJSON:
		case *noHeader:
			fmt.Fprintln(env.stdout, v)
		default:
			fmt.Fprintf(env.stdout, "%s=%s\n", n, v)
		}
	}
	if *asJSON {
		if err := json.NewEncoder(env.stdout).Encode(out); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("env print: not defined: %s", strings.Join(missing, " "))
	}
	return nil
}

func envSet(env *cmdEnv, args []string) error {
	fs, cfg := envFlags(env, "set")
	if err := envParseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"env set: want NAME=VALUE... (NAME= deletes)"}
	}
	type change struct {
		name, value string
		del         bool
	}
	var changes []change
	for _, a := range fs.Args() {
		name, value, ok := strings.Cut(a, "=")
		if !ok {
			return usageError{fmt.Sprintf("env set: %q is not NAME=VALUE", a)}
		}
		if err := ubootenv.CheckName(name); err != nil {
			return usageError{fmt.Sprintf("env set: %v", err)}
		}
		changes = append(changes, change{name: name, value: value, del: value == ""})
	}
	store, err := openEnv(*cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	err = store.Update(func(vars ubootenv.Env) error {
		changed := false
		for _, c := range changes {
			old, had := vars[c.name]
			if ubootenv.Protected(vars, c.name) && (c.del || old != c.value) {
				return fmt.Errorf("env set: %s is read-only or write-once (%s)", c.name, ubootenv.FlagsVar)
			}
			switch {
			case c.del && had:
				delete(vars, c.name)
				changed = true
			case !c.del && (!had || old != c.value):
				vars[c.name] = c.value
				changed = true
			}
		}
		if !changed {
			return errNoChange
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
		return nil
	case errors.Is(err, ubootenv.ErrNoValidCopy):
		return fmt.Errorf("%w: refusing to write a fresh environment, which would drop U-Boot's own variables; write one with mkenvimage", err)
	case errors.Is(err, ubootenv.ErrTooLarge):
		return fmt.Errorf("env set: %w", err)
	}
	return err
}
