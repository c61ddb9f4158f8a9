package fleetsim

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"meterupd/agent"
	"meterupd/boards/hw"
	"meterupd/boards/sim"
	"meterupd/localapi"
	"meterupd/mqttlink"
	"meterupd/node"
)

// Hardware revisions of the simulated nodes: a healthy node is of
// revision Hardware; a node Config.Fail picks is of revision FailHardware,
// for which the simulated release (WriteRelease) carries an image whose
// metrology produces no readings — the health check fails after the
// switch, and the node rolls back, as a release broken on one board
// revision does in a real fleet.
const (
	Hardware     uint32 = 2
	FailHardware uint32 = 9
)

// Errors of the simulator.
var (
	ErrConfig = errors.New("fleetsim: bad configuration")
)

// Config describes a simulated fleet.
type Config struct {
	// Nodes is how many nodes to run (1..MaxNodes).
	Nodes int
	// Broker is the head-end's MQTT broker, tcp://HOST:PORT.
	Broker string
	// Dir holds one state directory per node (Dir/<id>) and the template
	// they are copied from. A directory already made by an earlier run
	// with the same Config is used as it is (the nodes keep their
	// journals, as meters keep theirs across a restart of the simulator).
	Dir string
	// Fail is the fraction of nodes (0..1) given FailHardware; which
	// ones is decided by Seed alone.
	Fail float64
	Seed uint64
	// DeviceType and Version are every node's device type and factory
	// version (default em300 and 1.0).
	DeviceType, Version string
	// ImageSize is the size of the factory image (default DefaultImageSize).
	ImageSize int
	// Keys is the PEM keyring every node trusts for signed packages.
	Keys []byte
	// IDPrefix names the nodes: IDPrefix + a five-digit number (default "sim-").
	IDPrefix string
	// ConnectRate bounds how many nodes start (and connect) per second
	// (default 200), so a fleet does not hit the broker all at once.
	ConnectRate float64
	// Link tuning of every node (zero: mqttlink's defaults).
	ProgressEvery, BackoffMin, BackoffMax time.Duration
	Logger                                *slog.Logger
}

// MaxNodes bounds a fleet (each node needs a connection, and the process
// one file descriptor per connection).
const MaxNodes = 100_000

// DefaultImageSize is the factory image of a simulated node: a sim image
// header (4 KiB) and 8 KiB of body — a few KiB per slot, so that 10,000
// nodes fit on one machine.
const DefaultImageSize = 12 << 10

// geometry is a small NOR part: 4 KiB erase blocks, 256-byte program
// unit, 16 KiB slots, a journal of 16 blocks (it holds every record of
// several updates, so the check sees each job from its start), and small
// common data (six blocks: its layout needs six areas), legal log and
// operational ring. About 190 KiB of flash files per node.
func geometry() sim.Geometry {
	const e = 4 << 10
	return sim.Geometry{EraseSize: e, WriteSize: 256, SlotSize: 4 * e, JournalSize: 16 * e, CommonSize: 6 * e,
		Attempts: 3, AuditSize: 8 * e, OpLogSize: 2 * e}
}

func (c *Config) defaults() error {
	if c.DeviceType == "" {
		c.DeviceType = "em300"
	}
	if c.Version == "" {
		c.Version = "1.0"
	}
	if c.ImageSize == 0 {
		c.ImageSize = DefaultImageSize
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "sim-"
	}
	if c.ConnectRate <= 0 {
		c.ConnectRate = 200
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Nodes < 1 || c.Nodes > MaxNodes:
		return fmt.Errorf("%w: %d nodes, want 1..%d", ErrConfig, c.Nodes, MaxNodes)
	case c.Broker == "":
		return fmt.Errorf("%w: no broker", ErrConfig)
	case c.Dir == "":
		return fmt.Errorf("%w: no directory for the nodes", ErrConfig)
	case math.IsNaN(c.Fail) || c.Fail < 0 || c.Fail > 1:
		return fmt.Errorf("%w: fail fraction %v outside 0..1", ErrConfig, c.Fail)
	case c.ImageSize < sim.HeaderSize || int64(c.ImageSize) > geometry().SlotSize:
		return fmt.Errorf("%w: image size %d outside %d..%d", ErrConfig, c.ImageSize, sim.HeaderSize, geometry().SlotSize)
	}
	return nil
}

// Node is one simulated node.
type Node struct {
	ID  string
	Dir string
	// Fails: the node is of FailHardware (its update's image fails the
	// health check).
	Fails bool

	mu     sync.Mutex
	daemon *node.Daemon // while running
}

// Fleet is a simulated fleet: N real nodes (the node daemon with its
// agent, package store, delta apply, trial boot and health checks, on a
// sim board; and the node's MQTT link, its own connection) in this one
// process.
type Fleet struct {
	cfg     Config
	nodes   []*Node
	started atomic.Int64
}

// New prepares the fleet's state directories (see Config.Dir).
func New(cfg Config) (*Fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg}
	fails := failing(cfg.Nodes, cfg.Fail, cfg.Seed)
	for i := range cfg.Nodes {
		id := fmt.Sprintf("%s%05d", cfg.IDPrefix, i)
		f.nodes = append(f.nodes, &Node{ID: id, Dir: filepath.Join(cfg.Dir, id), Fails: fails[i]})
	}
	tmpl := filepath.Join(cfg.Dir, ".template")
	if _, err := os.Stat(filepath.Join(tmpl, "board.json")); errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(tmpl)
		if err := makeTemplate(tmpl, cfg); err != nil {
			return nil, err
		}
	}
	for _, n := range f.nodes {
		if _, err := os.Stat(filepath.Join(n.Dir, "identity.json")); err == nil {
			continue // made by an earlier run
		}
		os.RemoveAll(n.Dir)
		if err := copyTree(tmpl, n.Dir); err != nil {
			return nil, err
		}
		hwRev := Hardware
		if n.Fails {
			hwRev = FailHardware
		}
		id := agent.Identity{VendorID: VendorID, ClassID: ClassID, DeviceType: cfg.DeviceType, Hardware: hwRev}
		b, _ := json.Marshal(id) // a plain struct
		// identity.json last: a directory without it is made again.
		if err := os.WriteFile(filepath.Join(n.Dir, "identity.json"), b, 0o644); err != nil {
			return nil, fmt.Errorf("fleetsim: %w", err)
		}
	}
	return f, nil
}

// The identity of the simulated meters (the demo's).
const (
	VendorID = 19781
	ClassID  = 3
)

// failing picks round(n*frac) nodes from a permutation seeded by seed.
func failing(n int, frac float64, seed uint64) []bool {
	out := make([]bool, n)
	k := int(math.Round(float64(n) * frac))
	perm := rand.New(rand.NewPCG(seed, 0x6d657465727570)).Perm(n)
	for _, i := range perm[:k] {
		out[i] = true
	}
	return out
}

// makeTemplate provisions one node as `meterupd sim init` does: erased
// flash, the factory image in F and A, the journal, the trusted keys, the
// first power-on and the agent's first start (which marks the factory set
// good). The nodes are copies of it.
func makeTemplate(dir string, cfg Config) error {
	img := sim.Image(cfg.ImageSize, cfg.Version)
	if err := sim.Create(dir, geometry()); err != nil {
		return err
	}
	if err := sim.WriteFactory(dir, img); err != nil {
		return err
	}
	b, err := sim.Open(dir)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := agent.Provision(b, agent.Factory{Version: cfg.Version, SHA256: sha256.Sum256(img), Size: int64(len(img))}); err != nil {
		return err
	}
	if len(cfg.Keys) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "keys.pem"), cfg.Keys, 0o644); err != nil {
			return fmt.Errorf("fleetsim: %w", err)
		}
	}
	if _, err := b.PowerOn(); err != nil {
		return err
	}
	a, err := agent.Open(agent.Options{Board: b, StoreDir: filepath.Join(dir, "store")})
	if err != nil {
		return err
	}
	return a.Start(context.Background())
}

// copyTree copies the regular files and directories of src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".tmp") {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// Nodes are the fleet's nodes.
func (f *Fleet) Nodes() []*Node { return f.nodes }

// Started is how many nodes have been started so far.
func (f *Fleet) Started() int { return int(f.started.Load()) }

// Run starts every node, at most ConnectRate per second, and runs them
// until ctx ends; then it stops them (each daemon checkpoints what it is
// doing, as on a power-down) and returns. A node that stops with an error
// is logged and counted; Run returns an error naming how many did.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var failed atomic.Int64
	every := time.Duration(float64(time.Second) / f.cfg.ConnectRate)
	next := time.Now()
	for _, n := range f.nodes {
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		next = next.Add(every)
		wg.Add(1)
		f.started.Add(1)
		go func() {
			defer wg.Done()
			if err := f.runNode(ctx, n); err != nil {
				failed.Add(1)
				f.cfg.Logger.Error("node stopped", slog.String("node", n.ID), slog.Any("err", err))
			}
		}()
	}
	wg.Wait()
	if k := failed.Load(); k > 0 {
		return fmt.Errorf("fleetsim: %d nodes stopped with an error", k)
	}
	return nil
}

// runNode runs one node: its daemon and its link, as `meterupd run
// --mqtt` does on a meter, the link a client of the daemon's command API.
func (f *Fleet) runNode(ctx context.Context, n *Node) error {
	log := f.cfg.Logger.With(slog.String("node", n.ID))
	d := node.NewDaemon(node.Config{Board: "sim", StateDir: n.Dir, Logger: log, Embedded: true,
		OpenBoard: func() (hw.Board, error) { return sim.OpenPowered(n.Dir, sim.WithoutHeldFiles()) }})
	l, err := mqttlink.New(mqttlink.Config{Broker: f.cfg.Broker, ID: n.ID, Node: d, StoreDir: filepath.Join(n.Dir, "store"),
		Agent: node.Version().Version, Logger: log, ProgressEvery: f.cfg.ProgressEvery,
		BackoffMin: f.cfg.BackoffMin, BackoffMax: f.cfg.BackoffMax})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.daemon = d
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.daemon = nil
		n.mu.Unlock()
	}()
	dctx, stopDaemon := context.WithCancel(context.Background())
	ddone := make(chan error, 1)
	go func() { ddone <- d.Run(dctx) }()
	lerr := l.Run(ctx)
	// The link goes first (it says offline), then the daemon.
	stopDaemon()
	derr := <-ddone
	return errors.Join(lerr, derr)
}

// Journal is the node's journal, read through its running daemon's
// command API (the `journal` command), oldest record first.
func (n *Node) Journal(ctx context.Context) ([]agent.HistoryEntry, error) {
	n.mu.Lock()
	d := n.daemon
	n.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("fleetsim: node %s is not running", n.ID)
	}
	v, err := d.Handle(ctx, localapi.Request{Cmd: "journal"}, nil)
	if err != nil {
		return nil, err
	}
	h, ok := v.([]agent.HistoryEntry)
	if !ok {
		return nil, fmt.Errorf("fleetsim: node %s answered journal with %T", n.ID, v)
	}
	return h, nil
}
