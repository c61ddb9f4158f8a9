package sim

import (
	"fmt"

	"meterupd/boards"
	"meterupd/boards/hw"
)

func init() {
	boards.MustRegister(boards.Entry{Name: "sim", Open: openConfig})
}

// openConfig opens the node in cfg.StateDir for the command. A node that
// has not been powered on yet (fresh from Create) is powered on first:
// something has to run the agent.
func openConfig(cfg boards.Config) (hw.Board, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: no state directory given (--state)", ErrNoState)
	}
	return OpenPowered(cfg.StateDir, WithLogger(cfg.Logger))
}
