// Package watchdog drives a Linux watchdog device (/dev/watchdog, the
// kernel's watchdog API, Documentation/watchdog/watchdog-api.rst) as an
// hw.Watchdog.
//
// The device starts counting when it is opened. Feed is the
// WDIOC_KEEPALIVE ioctl; SetTimeout is WDIOC_SETTIMEOUT in whole seconds
// (rounded up: a watchdog that fires early is worse than one a second
// late), and the driver may take another value, which Timeout reads back
// (WDIOC_GETTIMEOUT). Close writes the magic character 'V' before closing,
// which stops the timer — unless the kernel was built with
// CONFIG_WATCHDOG_NOWAYOUT, in which case the node resets unless someone
// opens and feeds it again.
//
// Under systemd the service manager owns the hardware watchdog
// (RuntimeWatchdogSec=) and the daemon does not open it.
//
// The ioctls sit behind a seam (sysOps), so tests run against a fake that
// keeps the driver's rules; nothing here is opened by go test.
package watchdog
