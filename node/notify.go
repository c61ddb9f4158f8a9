package node

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Notifier speaks systemd's notification protocol (sd_notify(3)) in pure
// Go: datagrams of NAME=VALUE lines to the socket in NOTIFY_SOCKET. Under
// systemd (a Type=notify unit) the daemon reports READY=1 once it serves,
// STOPPING=1 when it stops, and feeds the service watchdog (WATCHDOG=1)
// every half of WATCHDOG_USEC while its owner goroutine makes progress:
// a hung owner stops the feeding and systemd restarts the service. systemd
// owns the hardware watchdog then. Without NOTIFY_SOCKET every method does
// nothing.
type Notifier struct {
	addr     string
	interval time.Duration // WATCHDOG_USEC; 0: no service watchdog
	now      func() time.Time
	alive    atomic.Int64 // unix nanoseconds of the owner's last sign of life
}

// NewNotifier reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID through
// getenv (os.Getenv).
func NewNotifier(getenv func(string) string) *Notifier {
	n := &Notifier{addr: getenv("NOTIFY_SOCKET"), now: time.Now}
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid := getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(osGetpid()) {
			n.interval = time.Duration(us) * time.Microsecond
		}
	}
	n.Alive()
	return n
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// WatchdogInterval is WATCHDOG_USEC (0 without a service watchdog).
func (n *Notifier) WatchdogInterval() time.Duration { return n.interval }

// Send sends one notification (lines of NAME=VALUE).
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	addr := n.addr
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// Ready tells the service manager that the daemon serves.
func (n *Notifier) Ready() { n.Send("READY=1\nSTATUS=serving the local API") }

// Stopping tells it that the daemon stops.
func (n *Notifier) Stopping() { n.Send("STOPPING=1") }

// Alive records a sign of life of the owner goroutine.
func (n *Notifier) Alive() { n.alive.Store(n.now().UnixNano()) }

// Watchdog feeds the service watchdog every half interval while the owner
// showed a sign of life within the interval, until ctx ends or stop is
// called (which waits for the feeding goroutine).
func (n *Notifier) Watchdog(ctx context.Context) (stop func()) {
	if !n.Enabled() || n.interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(n.interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n.now().Sub(time.Unix(0, n.alive.Load())) < n.interval {
					n.Send("WATCHDOG=1")
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
