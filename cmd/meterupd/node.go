package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"meterupd/boards/hw"
	"meterupd/localapi"
	"meterupd/node"
)

// logger logs warnings (and with -v every step) to standard error, without
// timestamps: the console and the system log add their own.
func (env *cmdEnv) logger() *slog.Logger {
	lvl := slog.LevelWarn
	if env.verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
}

// config is the node the global flags name.
func (env *cmdEnv) config() node.Config {
	return node.Config{Board: env.board, StateDir: env.state, Store: env.store, Socket: env.socket, Logger: env.logger()}
}

// configPath is a provisioning file of the node.
func (env *cmdEnv) configPath(name string) string {
	c := env.config()
	return c.ConfigPath(name)
}

// openBoard opens the board alone under the node's lock.
func (env *cmdEnv) openBoard() (hw.Board, func(), error) {
	if err := env.resolveBoard(); err != nil {
		return nil, nil, err
	}
	return node.OpenBoard(env.config())
}

// caller runs commands of the table: on the daemon when one runs, or on
// the node opened directly under its lock when none does. The results go
// through JSON either way, so the user sees the same output.
type caller interface {
	call(ctx context.Context, req localapi.Request, emit func(localapi.Event), out any) error
	close()
}

type daemonCaller struct{ c *localapi.Client }

func (d daemonCaller) call(ctx context.Context, req localapi.Request, emit func(localapi.Event), out any) error {
	return d.c.Call(ctx, req, emit, out)
}
func (d daemonCaller) close() { d.c.Close() }

type directCaller struct{ n *node.Node }

func (d directCaller) call(ctx context.Context, req localapi.Request, emit func(localapi.Event), out any) error {
	res, err := d.n.Handle(ctx, req, emit)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return localapi.AsError(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
func (d directCaller) close() { d.n.Close() }

// caller connects to the daemon, or opens the node when none runs.
func (env *cmdEnv) caller(ctx context.Context) (caller, error) {
	if err := env.resolveBoard(); err != nil {
		return nil, err
	}
	cfg := env.config()
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	c, err := localapi.Dial(ctx, cfg.SocketPath(), "meterupd "+node.Version().Version)
	if err == nil {
		env.viaDaemon = true
		return daemonCaller{c}, nil
	}
	if !errors.Is(err, localapi.ErrNoDaemon) && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	n, err := node.Open(cfg)
	if err != nil {
		return nil, err
	}
	return directCaller{n}, nil
}

// absPaths makes the paths absolute: the daemon does not share the
// client's working directory.
func absPaths(ps []string) ([]string, error) {
	out := make([]string, len(ps))
	for i, p := range ps {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
