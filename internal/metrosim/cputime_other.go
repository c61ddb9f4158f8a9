//go:build !linux

package metrosim

import "time"

// cpuTime falls back to wall time where the thread CPU clock is not at hand.
func cpuTime() time.Duration { return time.Duration(time.Now().UnixNano()) }
