//go:build !unix

package node

import "errors"

// ErrLocked: another process owns the node.
var ErrLocked = errors.New("node: another meterupd is working on this node")

func lockFile(string) (func(), error) { return nil, errors.ErrUnsupported }
