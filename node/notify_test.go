package node

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listenNotify is the service manager's end: a real unixgram socket.
func listenNotify(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

func recv(t *testing.T, c *net.UnixConn, d time.Duration) (string, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		return "", false
	}
	return string(b[:n]), true
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNotifyReadyAndStopping(t *testing.T) {
	p, c := listenNotify(t)
	n := NewNotifier(env(map[string]string{"NOTIFY_SOCKET": p}))
	n.Ready()
	if got, ok := recv(t, c, 2*time.Second); !ok || !strings.HasPrefix(got, "READY=1\n") {
		t.Errorf("Ready sent %q, want READY=1 first", got)
	}
	n.Stopping()
	if got, _ := recv(t, c, 2*time.Second); got != "STOPPING=1" {
		t.Errorf("Stopping sent %q", got)
	}
}

// TestNotifyWatchdogFollowsTheOwner: the service watchdog is fed while the
// owner shows signs of life, and not once it stops showing them.
func TestNotifyWatchdogFollowsTheOwner(t *testing.T) {
	p, c := listenNotify(t)
	n := NewNotifier(env(map[string]string{"NOTIFY_SOCKET": p, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": strconv.Itoa(osGetpid())}))
	if n.WatchdogInterval() != 200*time.Millisecond {
		t.Fatalf("interval = %v", n.WatchdogInterval())
	}
	var now atomic.Int64 // the test's clock, read by the feeding goroutine
	now.Store(time.Now().UnixNano())
	n.now = func() time.Time { return time.Unix(0, now.Load()) }
	n.Alive()
	stop := n.Watchdog(context.Background())
	defer stop()
	if got, ok := recv(t, c, 2*time.Second); !ok || got != "WATCHDOG=1" {
		t.Fatalf("watchdog sent %q, %v; want WATCHDOG=1", got, ok)
	}
	// The owner hangs: its last sign of life is older than the interval.
	now.Add(int64(time.Second))
	for {
		if _, ok := recv(t, c, 300*time.Millisecond); !ok {
			break // nothing within more than half an interval: no feeding
		}
	}
	if got, ok := recv(t, c, 500*time.Millisecond); ok {
		t.Errorf("watchdog fed a hung owner: %q", got)
	}
}

func TestNotifyOtherPIDAndNoSocket(t *testing.T) {
	n := NewNotifier(env(map[string]string{"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}))
	if n.WatchdogInterval() != 0 {
		t.Errorf("watchdog meant for pid 1 taken by us")
	}
	n = NewNotifier(env(nil))
	if n.Enabled() || n.Send("READY=1") != nil {
		t.Errorf("a notifier without NOTIFY_SOCKET is not silent")
	}
}
