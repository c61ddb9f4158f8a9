package console

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"meterupd/techtoken"
)

// MaxLine bounds a console line: the longest legal line is a login line
// (techtoken.MaxLoginLine). Longer input is refused whole, never cut and
// executed.
const MaxLine = techtoken.MaxLoginLine + 2

// Parse errors.
var (
	ErrUnknown = errors.New("console: unknown command")
	ErrArgs    = errors.New("console: wrong arguments")
	ErrGarbled = errors.New("console: garbled line")
	ErrTooLong = errors.New("console: line too long")
)

// Command is one parsed console line.
type Command struct {
	Name string
	// Arg: json/echo "on"|"off", rollback's reason, login's full line
	// (empty: ask for a challenge).
	Arg string
	// Needs is the scope a logged-in session must grant ("" for the
	// commands anybody at the port may use).
	Needs string
}

type spec struct {
	help  string
	args  string // "", "onoff", "rest", "login"
	needs string
}

var specs = map[string]spec{
	"help":     {help: "this list"},
	"status":   {help: "the node's state"},
	"journal":  {help: "the journal's records"},
	"version":  {help: "meterupd's version and board"},
	"events":   {help: "follow the node's progress; any key stops"},
	"audit":    {help: "the legal audit trail and whether its chain holds"},
	"login":    {help: "login: get a challenge; login NONCE TOKEN SIGNATURE: log in", args: "login"},
	"logout":   {help: "end the session"},
	"install":  {help: "receive a package with YMODEM (sz --ymodem) and install it", needs: "install"},
	"activate": {help: "reboot into the installed set (trial)", needs: "activate"},
	"rollback": {help: "rollback [REASON]: go back to the previous set", args: "rest", needs: "rollback"},
	"commit":   {help: "confirm the set on trial", needs: "commit"},
	"json":     {help: "json on|off: answers in JSON, one line each", args: "onoff"},
	"echo":     {help: "echo on|off: echo typed characters", args: "onoff"},
	"exit":     {help: "log out and end the console (--stdio) or return to the prompt"},
}

// order is the help's order.
var order = []string{"help", "status", "journal", "version", "events", "audit", "login", "logout", "install", "activate", "rollback", "commit", "json", "echo", "exit"}

// Parse parses one line (without its end of line). Empty input is
// Command{} and no error. It never panics and allocates nothing sized
// beyond the line.
func Parse(line string) (Command, error) {
	if len(line) > MaxLine {
		return Command{}, fmt.Errorf("%w: %d bytes, max %d", ErrTooLong, len(line), MaxLine)
	}
	if !utf8.ValidString(line) {
		return Command{}, fmt.Errorf("%w: not text", ErrGarbled)
	}
	for _, r := range line {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return Command{}, fmt.Errorf("%w: control character %#02x", ErrGarbled, r)
		}
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return Command{}, nil
	}
	name, rest, _ := strings.Cut(line, " ")
	name = strings.ToLower(name)
	rest = strings.TrimSpace(rest)
	if name == "quit" {
		name = "exit"
	}
	s, ok := specs[name]
	if !ok {
		if len(name) > 32 {
			name = name[:32] + "…"
		}
		return Command{}, fmt.Errorf("%w %q (help lists them)", ErrUnknown, name)
	}
	c := Command{Name: name, Needs: s.needs}
	switch s.args {
	case "":
		if rest != "" {
			return Command{}, fmt.Errorf("%w: %s takes no arguments", ErrArgs, name)
		}
	case "onoff":
		switch strings.ToLower(rest) {
		case "on", "off":
			c.Arg = strings.ToLower(rest)
		default:
			return Command{}, fmt.Errorf("%w: %s on|off", ErrArgs, name)
		}
	case "rest":
		c.Arg = rest
	case "login":
		if rest != "" {
			if _, err := techtoken.ParseLogin(line); err != nil {
				return Command{}, err
			}
			c.Arg = line
		}
	}
	return c, nil
}

// Help is the command list, one command a line.
func Help() string {
	var b strings.Builder
	for _, n := range order {
		s := specs[n]
		tag := ""
		if s.needs != "" {
			tag = " [login: " + s.needs + "]"
		}
		fmt.Fprintf(&b, "  %-9s %s%s\n", n, s.help, tag)
	}
	return b.String()
}
