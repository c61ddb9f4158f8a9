package am335x

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// reboot syncs and restarts; any return is an error.
var reboot = func() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("am335x: reboot: %w", err)
	}
	return fmt.Errorf("am335x: reboot returned")
}
