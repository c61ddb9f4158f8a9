package watchdog

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"meterupd/boards/hw"
)

// DefaultPath is the watchdog device of a Linux node.
const DefaultPath = "/dev/watchdog"

// ErrClosed: the device was closed.
var ErrClosed = errors.New("watchdog: device closed")

// sysOps are the ioctls the driver needs (the seam tests replace).
type sysOps interface {
	keepalive(fd uintptr) error
	setTimeout(fd uintptr, secs int) error
	getTimeout(fd uintptr) (int, error)
}

// sys is the platform's implementation (watchdog_linux.go,
// watchdog_other.go).
var sys sysOps = platformOps{}

// Device is an open watchdog device. It is safe for concurrent use.
type Device struct {
	mu  sync.Mutex
	f   *os.File
	ops sysOps
}

var _ hw.Watchdog = (*Device)(nil)

// Open opens the watchdog device at path, which starts it, and sets its
// timeout when timeout > 0. On systems other than Linux it fails with an
// error wrapping hw.ErrUnsupported.
func Open(path string, timeout time.Duration) (*Device, error) {
	if !supported {
		return nil, fmt.Errorf("watchdog: %w on this system", hw.ErrUnsupported)
	}
	return open(path, timeout, sys)
}

func open(path string, timeout time.Duration, ops sysOps) (*Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	d := &Device{f: f, ops: ops}
	if timeout > 0 {
		if err := d.SetTimeout(timeout); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// Feed restarts the countdown (WDIOC_KEEPALIVE).
func (d *Device) Feed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return ErrClosed
	}
	if err := d.ops.keepalive(d.f.Fd()); err != nil {
		return fmt.Errorf("watchdog: keepalive: %w", err)
	}
	return nil
}

// SetTimeout sets the countdown, rounded up to whole seconds
// (WDIOC_SETTIMEOUT); Timeout tells what the driver took.
func (d *Device) SetTimeout(t time.Duration) error {
	if t <= 0 || t > time.Duration(math.MaxInt32)*time.Second {
		return fmt.Errorf("watchdog: timeout %v out of range", t)
	}
	secs := int((t + time.Second - 1) / time.Second)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return ErrClosed
	}
	if err := d.ops.setTimeout(d.f.Fd(), secs); err != nil {
		return fmt.Errorf("watchdog: set timeout %ds: %w", secs, err)
	}
	return nil
}

// Timeout reads the countdown in force (WDIOC_GETTIMEOUT).
func (d *Device) Timeout() (time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return 0, ErrClosed
	}
	secs, err := d.ops.getTimeout(d.f.Fd())
	if err != nil {
		return 0, fmt.Errorf("watchdog: get timeout: %w", err)
	}
	return time.Duration(secs) * time.Second, nil
}

// Close stops the watchdog with the magic close ('V', then close). A
// second Close returns ErrClosed.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return ErrClosed
	}
	f := d.f
	d.f = nil
	_, werr := f.Write([]byte("V"))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("watchdog: magic close: %w", err)
	}
	return nil
}
