// The simulated meter (`meterupd sim …`, and the sim board it registers)
// is for the bench and the demo: its fault injection is not linked into
// the meter binaries (GOARCH arm and arm64) unless built with -tags sim.

//go:build !(arm || arm64) || sim

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/delta"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/node"
)

func init() {
	register(&command{name: "sim", usage: "init DIR | image OUT | power-cycle | power mains|battery | clock valid|invalid | metrology [--veto CODE --retry-after D --vetoes N] | damage SLOT | modem PORT|none [--dialect quectel|ublox] | modem --simulate quectel|ublox [--revision R] — the simulated meter", run: cmdSim})
}

func cmdSim(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usageError{"sim needs a subcommand: init, image, power-cycle, power, clock, metrology, damage, modem"}
	}
	if env.board == "" {
		env.board = "sim"
	}
	if env.board != "sim" {
		return usageError{"sim commands work on the sim board only"}
	}
	switch args[0] {
	case "init":
		return simInit(env, args[1:])
	case "image":
		return simImage(env, args[1:])
	case "power-cycle":
		return simPowerCycle(env, args[1:])
	case "power":
		return simPower(env, args[1:])
	case "clock":
		return simClock(env, args[1:])
	case "metrology":
		return simMetrology(ctx, env, args[1:])
	case "damage":
		return simDamage(env, args[1:])
	case "modem":
		return simModem(ctx, env, args[1:])
	}
	return usageError{fmt.Sprintf("unknown sim subcommand %q", args[0])}
}

// simInit provisions a simulated node: erased flash, the factory image in
// F and A, the journal formatted, then the first power-on.
func simInit(env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("sim init", flag.ContinueOnError)
	image := fs.String("image", "", "factory image (default: a generated one)")
	ver := fs.String("version", "1.0.0", "factory version")
	size := fs.Int("image-size", 1<<20, "size of the generated factory image")
	keys := fs.String("keys", "", "PEM file of the public keys the node trusts for signed packages")
	devType := fs.String("device-type", "em300", "device type of the simulated meter")
	hwRev := fs.Uint("hardware", 2, "hardware revision of the simulated meter")
	nodeID := fs.String("id", "", "the node's id, as technician tokens name it (node:ID)")
	groups := fs.String("groups", "", "comma-separated groups of the node, as tokens name them (group:NAME)")
	techKeys := fs.String("tech-keys", "", "PEM file of the technician authority keys (console login; never the package keys)")
	formats := fs.String("delta-formats", "", "node-format delta versions the meter advertises and selects, e.g. 1 (an older meter; default: all it applies)")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"sim init takes one directory"}
	}
	var versions []int // checked before anything is created
	if *formats != "" {
		if versions, err = delta.ParseVersions(*formats); err != nil {
			return usageError{err.Error()}
		}
	}
	if len(pos) == 1 {
		env.state = pos[0]
	}
	if env.state == "" {
		return usageError{"sim init DIR: the state directory to create"}
	}
	var img []byte
	if *image != "" {
		if img, err = os.ReadFile(*image); err != nil {
			return err
		}
	} else {
		img = sim.Image(*size, *ver)
	}
	if err := sim.Create(env.state, sim.DefaultGeometry()); err != nil {
		return err
	}
	if err := sim.WriteFactory(env.state, img); err != nil {
		return err
	}
	b, err := sim.Open(env.state)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := agent.Provision(b, agent.Factory{Version: *ver, SHA256: sha256.Sum256(img), Size: int64(len(img))}); err != nil {
		return err
	}
	// Provisioning data: what the node is, and whom it trusts.
	id := agent.Identity{VendorID: 19781, ClassID: 3, DeviceType: *devType, Hardware: uint32(*hwRev)}
	id.DeltaFormats = versions
	idj, _ := json.MarshalIndent(id, "", "  ")
	if err := os.WriteFile(env.configPath("identity.json"), append(idj, '\n'), 0o644); err != nil {
		return err
	}
	if *keys != "" {
		pem, err := os.ReadFile(*keys)
		if err != nil {
			return err
		}
		if _, err := manifest.ParseKeyringPEM(pem); err != nil {
			return fmt.Errorf("trusted keys %s: %w", *keys, err)
		}
		if err := os.WriteFile(env.configPath("keys.pem"), pem, 0o644); err != nil {
			return err
		}
	}
	if err := provisionConsole(env, *nodeID, *groups, *techKeys); err != nil {
		return err
	}
	s, err := b.PowerOn()
	if err != nil {
		return err
	}
	// The agent's first start marks the factory set good.
	a, err := agent.Open(agent.Options{Board: b, StoreDir: storeDir(env), Logger: env.logger()})
	if err != nil {
		return err
	}
	if err := a.Start(context.Background()); err != nil {
		return err
	}
	g := b.Geometry()
	fmt.Fprintf(env.stdout, "simulated meter in %s: factory version %s in F and A, %d KiB erase blocks, %d MiB slots; powered on, running slot %s\n",
		env.state, *ver, g.EraseSize>>10, g.SlotSize>>20, s)
	return nil
}

// simImage writes a generated image, and prints its digest.
func simImage(env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("sim image", flag.ContinueOnError)
	ver := fs.String("version", "", "version written in the image header")
	size := fs.Int("size", 1<<20, "image size in bytes")
	unhealthy := fs.Bool("unhealthy", false, "the set boots but its metrology fails")
	unbootable := fs.Bool("unbootable", false, "the set does not boot")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *ver == "" {
		return usageError{"sim image OUT --version V [--size N] [--unhealthy] [--unbootable]"}
	}
	var marks []string
	if *unhealthy {
		marks = append(marks, sim.MarkUnhealthy)
	}
	if *unbootable {
		marks = append(marks, sim.MarkUnbootable)
	}
	img := sim.Image(*size, *ver, marks...)
	if err := os.WriteFile(pos[0], img, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(img)
	fmt.Fprintln(env.stdout, hex.EncodeToString(sum[:]))
	return nil
}

func simPowerCycle(env *cmdEnv, _ []string) error {
	sb, done, err := env.openSim()
	if err != nil {
		return err
	}
	defer done()
	s, err := sb.PowerOn()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "power cycled: the bootloader started slot %s\n", s)
	return nil
}

func simPower(env *cmdEnv, args []string) error {
	if len(args) != 1 || (args[0] != string(hw.Mains) && args[0] != string(hw.Battery)) {
		return usageError{"sim power mains|battery"}
	}
	sb, done, err := env.openSim()
	if err != nil {
		return err
	}
	defer done()
	return sb.SetPower(hw.PowerSource(args[0]))
}

// simClock sets the sim RTC's valid flag (scheduled activation waits
// for a command while it is not valid).
func simClock(env *cmdEnv, args []string) error {
	if len(args) != 1 || (args[0] != "valid" && args[0] != "invalid") {
		return usageError{"sim clock valid|invalid"}
	}
	sb, done, err := env.openSim()
	if err != nil {
		return err
	}
	defer done()
	return sb.SetClockValid(args[0] == "valid")
}

// simMetrology is the sim's metrology process as a local process of the
// daemon: it registers to be asked before activations, vetoes the first
// --vetoes questions with --veto (e.g. billing-close) and --retry-after,
// then says ok; it closes and flushes its interval before the switch.
// It runs until interrupted.
func simMetrology(ctx context.Context, env *cmdEnv, args []string) error {
	fs := flag.NewFlagSet("sim metrology", flag.ContinueOnError)
	code := fs.String("veto", "", "veto with this reason code (billing-close, tariff-switch, tamper-investigation, load-control, prepayment-credit, user-defined)")
	detail := fs.String("detail", "", "the veto's detail")
	retry := fs.Duration("retry-after", 5*time.Second, "the veto's retry-after")
	vetoes := fs.Int("vetoes", 1, "how many questions to veto before saying ok (-1: always)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long the daemon waits for an answer")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *code != "" && !agent.ValidVetoCode(agent.VetoCode(*code)) {
		return usageError{fmt.Sprintf("--veto %q is not one of %v", *code, agent.VetoCodes)}
	}
	interval := 0
	cfg := env.config()
	if err := cfg.Resolve(); err != nil {
		return err
	}
	v := &node.Vetoer{Socket: cfg.SocketPath(), Process: "metrology", Timeout: *timeout,
		Decide: func(n int, _ agent.Question) localapi.Request {
			if *code == "" || *vetoes >= 0 && n > *vetoes {
				return localapi.Request{}
			}
			return localapi.Request{Veto: true, Code: *code, Reason: *detail, RetryAfterS: int64(*retry / time.Second)}
		},
		Flush: func() error { interval++; return nil },
		Say:   func(s string) { fmt.Fprintln(env.stdout, "metrology: "+s) },
	}
	return v.Run(ctx)
}

// simDamage flips one bit in a slot's flash, as a worn cell would: the
// set's digest no longer matches.
func simDamage(env *cmdEnv, args []string) error {
	if len(args) < 1 || !hw.Slot(args[0]).Valid() {
		return usageError{"sim damage SLOT [OFFSET]"}
	}
	off := int64(8192)
	if len(args) == 2 {
		v, err := strconv.ParseInt(args[1], 0, 64)
		if err != nil {
			return usageError{"sim damage: bad offset"}
		}
		off = v
	}
	sb, done, err := env.openSim()
	if err != nil {
		return err
	}
	defer done()
	dir := sb.Dir()
	// The sim keeps each partition in DIR/<name>.bin; a worn cell is a bit
	// that reads wrong, whatever the flash rules of programming say.
	f, err := os.OpenFile(filepath.Join(dir, args[0]+".bin"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var c [1]byte
	if _, err := f.ReadAt(c[:], off); err != nil {
		return fmt.Errorf("sim damage: %w", err)
	}
	c[0] ^= 0x10
	if _, err := f.WriteAt(c[:], off); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "flipped one bit of slot %s at offset %d\n", args[0], off)
	return f.Sync()
}

func (env *cmdEnv) openSim() (*sim.Board, func(), error) {
	if env.board != "sim" {
		return nil, nil, usageError{"sim commands need --board sim"}
	}
	b, done, err := env.openBoard()
	if err != nil {
		return nil, nil, err
	}
	return b.(*sim.Board), done, nil
}

func storeDir(env *cmdEnv) string {
	c := env.config()
	return c.StorePath()
}

func init() {
	// The sim board's errors, in sentences (the node package links no
	// board driver itself).
	node.RegisterExplainer(func(c *node.Config, err error) error {
		switch {
		case errors.Is(err, sim.ErrNoState):
			return fmt.Errorf("no simulated node in %s: create one with `meterupd sim init %s` (%w)", c.StateDir, c.StateDir, err)
		case errors.Is(err, sim.ErrCorruptState):
			return fmt.Errorf("the simulated node in %s is damaged; nothing was changed (%w)", c.StateDir, err)
		}
		return nil
	})
}
