package console

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"meterupd/techtoken"
)

// ErrClient: the console at the other end did not log us in.
var ErrClient = errors.New("console: login failed")

var (
	challengeRE = regexp.MustCompile(`^challenge ([0-9a-fA-F]{32})$`)
	nodeRE      = regexp.MustCompile(`^node (\S{1,128})$`)
)

// Login is the technician tool's side (`meterpkg console`): on the line
// rw to a node's console it asks for a challenge, answers it with token
// and the technician's key, and returns the console's "logged in as …"
// line. The session then stays with the port (until logout or the idle
// timeout): a terminal program can take over. Every wait is bounded by
// timeout; a line longer than MaxLine is dropped.
func Login(ctx context.Context, rw io.ReadWriter, token []byte, key crypto.Signer, timeout time.Duration) (string, error) {
	p := newPort(rw)
	end := time.Now().Add(timeout)
	next := func() (string, error) {
		var b []byte
		for {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			left := time.Until(end)
			if left <= 0 {
				return "", fmt.Errorf("%w: no answer within %s", ErrClient, timeout)
			}
			c, err := p.readByte(min(left, 200*time.Millisecond))
			if errors.Is(err, errIdle) {
				continue
			}
			if err != nil {
				return "", err
			}
			switch {
			case c == '\n':
				return strings.TrimRight(string(b), "\r"), nil
			case len(b) < MaxLine:
				b = append(b, c)
			}
		}
	}
	if _, err := io.WriteString(rw, "\rlogin\r"); err != nil {
		return "", err
	}
	var nonce []byte
	var node string
	for nonce == nil || node == "" {
		l, err := next()
		if err != nil {
			return "", err
		}
		if m := challengeRE.FindStringSubmatch(l); m != nil {
			nonce, _ = hex.DecodeString(m[1])
		} else if m := nodeRE.FindStringSubmatch(l); m != nil && nonce != nil {
			node = m[1]
		} else if r, ok := strings.CutPrefix(l, "refused: "); ok {
			return "", fmt.Errorf("%w: %s", ErrClient, r)
		}
	}
	line, err := techtoken.Answer(token, key, nonce, node)
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(rw, line+"\r"); err != nil {
		return "", err
	}
	for {
		l, err := next()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "logged in as ") {
			return l, nil
		}
		if r, ok := strings.CutPrefix(l, "refused: "); ok {
			return "", fmt.Errorf("%w: %s", ErrClient, r)
		}
	}
}
