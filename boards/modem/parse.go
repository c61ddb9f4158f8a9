package modem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLine bounds one response line. A module never sends longer lines to
// the commands this package issues; longer input is noise and is dropped up
// to the next line end.
const MaxLine = 512

// maxFields bounds the comma-separated parameters of one response line
// (+CEREG: with every optional field has 9).
const maxFields = 16

var (
	// ErrSyntax is wrapped by every *SyntaxError.
	ErrSyntax = errors.New("modem: malformed response")
	// ErrCommandFailed is returned when the module answers ERROR (or a
	// final result such as NO CARRIER); *CMEError wraps it too.
	ErrCommandFailed = errors.New("modem: command failed")
)

// SyntaxError is a response line that does not parse. Offset is the byte
// offset in Line where parsing stopped.
type SyntaxError struct {
	Line   string
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("modem: malformed response %q at offset %d: %s", e.Line, e.Offset, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Splitter cuts the byte stream from a module into lines. Lines end at CR
// or LF; empty lines vanish. Bytes outside printable ASCII are line noise
// (a UART's framing errors read as 0x00, 0xFF and the like) and are
// dropped; so is a line longer than MaxLine, up to its end. Trailing spaces
// are trimmed. The data prompt "> " at the start of a line (AT+CMGS, the
// firmware transfer) is reported as soon as it arrives, since the module
// sends no line end after it.
//
// The zero value is ready to use. Splitter keeps at most MaxLine bytes.
type Splitter struct {
	buf      [MaxLine]byte
	n        int
	overlong bool
	// Dropped counts noise bytes and the bytes of overlong lines.
	Dropped int
}

// Feed splits p, calling emit for every complete line, or with prompt set
// (and an empty line) for a data prompt.
func (s *Splitter) Feed(p []byte, emit func(line string, prompt bool)) {
	for _, c := range p {
		switch {
		case c == '\r' || c == '\n':
			if s.overlong {
				s.overlong = false
				s.n = 0
				continue
			}
			line := strings.TrimRight(string(s.buf[:s.n]), " ")
			s.n = 0
			if line != "" {
				emit(line, false)
			}
		case c >= 0x20 && c <= 0x7e:
			if s.overlong || s.n == MaxLine {
				if !s.overlong {
					s.Dropped += s.n
				}
				s.overlong = true
				s.Dropped++
				continue
			}
			s.buf[s.n] = c
			s.n++
			if s.n == 2 && s.buf[0] == '>' && s.buf[1] == ' ' {
				s.n = 0
				emit("", true)
			}
		default:
			s.Dropped++
		}
	}
}

// field is one parameter of a response line.
type field struct {
	s      string
	quoted bool
}

// splitParams splits the parameters after "+XXX: ": comma-separated, each
// either a bare token (spaces trimmed) or a double-quoted string (no
// escapes, as in 27.007 §4.1 for the commands used here). base is the
// offset of s in line, for errors.
func splitParams(line string, base int) ([]field, error) {
	s := line[base:]
	var out []field
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if len(out) == maxFields {
			return nil, &SyntaxError{Line: line, Offset: base + i, Msg: "too many parameters"}
		}
		var f field
		if i < len(s) && s[i] == '"' {
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, &SyntaxError{Line: line, Offset: base + i, Msg: "unterminated string"}
			}
			f = field{s: s[i+1 : i+1+end], quoted: true}
			i += end + 2
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i < len(s) && s[i] != ',' {
				return nil, &SyntaxError{Line: line, Offset: base + i, Msg: "text after string"}
			}
		} else {
			j := strings.IndexByte(s[i:], ',')
			if j < 0 {
				j = len(s) - i
			}
			tok := strings.TrimRight(s[i:i+j], " ")
			if strings.IndexByte(tok, '"') >= 0 {
				return nil, &SyntaxError{Line: line, Offset: base + i, Msg: "quote inside parameter"}
			}
			f = field{s: tok}
			i += j
		}
		out = append(out, f)
		if i >= len(s) {
			return out, nil
		}
		i++ // the comma
	}
}

// params checks that line starts with prefix (e.g. "+CSQ:") and splits
// the rest.
func params(line, prefix string) ([]field, error) {
	if !strings.HasPrefix(line, prefix) {
		return nil, &SyntaxError{Line: line, Offset: 0, Msg: "want " + prefix}
	}
	return splitParams(line, len(prefix))
}

// intField parses a bare decimal field in [lo, hi].
func intField(line string, f field, lo, hi int) (int, error) {
	if f.quoted || f.s == "" || len(f.s) > 6 {
		return 0, &SyntaxError{Line: line, Offset: strings.Index(line, f.s), Msg: "want a number"}
	}
	v, err := strconv.Atoi(f.s)
	if err != nil || v < lo || v > hi || f.s[0] == '+' || f.s[0] == '-' {
		return 0, &SyntaxError{Line: line, Offset: strings.Index(line, f.s), Msg: fmt.Sprintf("want a number in %d..%d", lo, hi)}
	}
	return v, nil
}

// Signal is the answer to AT+CSQ (3GPP TS 27.007 §8.5): the raw RSSI and
// bit-error-rate indices as the module reports them.
type Signal struct {
	// RSSI is 0..31, or 99 when not known or not detectable.
	RSSI int `json:"rssi"`
	// BER is the bit error rate class 0..7 (RXQUAL), or 99 when not known
	// (LTE modules always report 99).
	BER int `json:"ber"`
}

// DBm converts RSSI to dBm: 0 is -113 dBm or less, 31 is -51 dBm or more,
// 2 dB per step. ok is false when the module does not know.
func (s Signal) DBm() (dbm int, ok bool) {
	if s.RSSI < 0 || s.RSSI > 31 {
		return 0, false
	}
	return -113 + 2*s.RSSI, true
}

// Known reports whether the module measured a signal.
func (s Signal) Known() bool { _, ok := s.DBm(); return ok }

// ParseCSQ parses "+CSQ: <rssi>,<ber>".
func ParseCSQ(line string) (Signal, error) {
	f, err := params(line, "+CSQ:")
	if err != nil {
		return Signal{}, err
	}
	if len(f) != 2 {
		return Signal{}, &SyntaxError{Line: line, Offset: len(line), Msg: "want 2 parameters"}
	}
	rssi, err := intField(line, f[0], 0, 99)
	if err != nil {
		return Signal{}, err
	}
	if rssi > 31 && rssi != 99 {
		return Signal{}, &SyntaxError{Line: line, Offset: strings.Index(line, f[0].s), Msg: "rssi not in 0..31 or 99"}
	}
	ber, err := intField(line, f[1], 0, 99)
	if err != nil {
		return Signal{}, err
	}
	if ber > 7 && ber != 99 {
		return Signal{}, &SyntaxError{Line: line, Offset: strings.LastIndex(line, f[1].s), Msg: "ber not in 0..7 or 99"}
	}
	return Signal{RSSI: rssi, BER: ber}, nil
}

// FormatCSQ is the line a module sends for s.
func FormatCSQ(s Signal) string { return fmt.Sprintf("+CSQ: %d,%d", s.RSSI, s.BER) }

// RegStat is the <stat> of +CREG/+CGREG/+CEREG (27.007 §7.2, §10.1.22).
type RegStat int

const (
	NotRegistered     RegStat = 0
	RegisteredHome    RegStat = 1
	Searching         RegStat = 2
	Denied            RegStat = 3
	StatUnknown       RegStat = 4
	RegisteredRoaming RegStat = 5
	// 6..11: SMS only (home, roaming), emergency only, CSFB not preferred
	// (home, roaming), emergency bearer only.
)

// Registered reports whether the module is registered on a network, at
// home or roaming (including the SMS-only and CSFB-not-preferred kinds).
func (s RegStat) Registered() bool {
	switch s {
	case 1, 5, 6, 7, 9, 10:
		return true
	}
	return false
}

var statNames = [...]string{"not registered", "home", "searching", "denied", "unknown", "roaming",
	"home, sms only", "roaming, sms only", "emergency only", "home, csfb not preferred",
	"roaming, csfb not preferred", "emergency bearer only"}

func (s RegStat) String() string {
	if s >= 0 && int(s) < len(statNames) {
		return statNames[s]
	}
	return "stat " + strconv.Itoa(int(s))
}

// Reg is one registration report: the answer to AT+CREG? / AT+CEREG? /
// AT+CGREG?, or the unsolicited +CREG: / +CEREG: / +CGREG: that the module
// sends when the registration changes.
//
// The two forms differ only in the leading <n>: the query answer is
// "+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>…]]", the URC "+CREG: <stat>[,<lac>,
// <ci>[,<AcT>…]]" with <lac> quoted. ParseReg tells them apart by that: two
// leading bare numbers are a query answer.
type Reg struct {
	// Cmd is "CREG" (circuit switched), "CGREG" (GPRS) or "CEREG" (EPS).
	Cmd string `json:"cmd"`
	// Mode is the <n> of a query answer, -1 in a URC.
	Mode int     `json:"mode"`
	Stat RegStat `json:"stat"`
	// Area is the location or tracking area code in hex, "" if absent.
	Area string `json:"area,omitempty"`
	// Cell is the cell id in hex, "" if absent.
	Cell string `json:"cell,omitempty"`
	// AcT is the access technology (0 GSM … 7 E-UTRAN, 9 NB-IoT), -1 if
	// absent.
	AcT int `json:"act"`
}

// IsURC reports whether r came unsolicited rather than as a query answer.
func (r Reg) IsURC() bool { return r.Mode < 0 }

func regCmd(line string) (string, bool) {
	for _, c := range []string{"CREG", "CGREG", "CEREG"} {
		if strings.HasPrefix(line, "+"+c+":") {
			return c, true
		}
	}
	return "", false
}

func hexField(line string, f field, max int) (string, error) {
	if f.s == "" {
		return "", nil
	}
	if len(f.s) > max {
		return "", &SyntaxError{Line: line, Offset: strings.Index(line, f.s), Msg: "area or cell id too long"}
	}
	for i := 0; i < len(f.s); i++ {
		c := f.s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", &SyntaxError{Line: line, Offset: strings.Index(line, f.s) + i, Msg: "want hex"}
		}
	}
	return strings.ToUpper(f.s), nil
}

// ParseReg parses a +CREG:, +CGREG: or +CEREG: line, query answer or URC.
// Optional fields after <AcT> (reject causes, PSM timers) are checked for
// syntax and ignored.
func ParseReg(line string) (Reg, error) {
	cmd, ok := regCmd(line)
	if !ok {
		return Reg{}, &SyntaxError{Line: line, Msg: "want +CREG:, +CGREG: or +CEREG:"}
	}
	f, err := params(line, "+"+cmd+":")
	if err != nil {
		return Reg{}, err
	}
	r := Reg{Cmd: cmd, Mode: -1, AcT: -1}
	rest := f
	if len(f) >= 2 && !f[0].quoted && !f[1].quoted && f[1].s != "" {
		if r.Mode, err = intField(line, f[0], 0, 5); err != nil {
			return Reg{}, err
		}
		rest = f[1:]
	}
	st, err := intField(line, rest[0], 0, 11)
	if err != nil {
		return Reg{}, err
	}
	r.Stat = RegStat(st)
	rest = rest[1:]
	if len(rest) == 1 {
		return Reg{}, &SyntaxError{Line: line, Offset: len(line), Msg: "area without cell id"}
	}
	if len(rest) >= 2 {
		if r.Area, err = hexField(line, rest[0], 6); err != nil {
			return Reg{}, err
		}
		if r.Cell, err = hexField(line, rest[1], 10); err != nil {
			return Reg{}, err
		}
		rest = rest[2:]
	}
	if len(rest) >= 1 && rest[0].s != "" {
		if r.AcT, err = intField(line, rest[0], 0, 15); err != nil {
			return Reg{}, err
		}
	}
	return r, nil
}

// FormatReg is the line a module sends for r: the query answer when
// r.Mode >= 0, else the URC.
func FormatReg(r Reg) string {
	var b strings.Builder
	b.WriteString("+" + r.Cmd + ": ")
	if r.Mode >= 0 {
		fmt.Fprintf(&b, "%d,", r.Mode)
	}
	fmt.Fprintf(&b, "%d", r.Stat)
	if r.Area != "" || r.Cell != "" || r.AcT >= 0 {
		fmt.Fprintf(&b, ",%q,%q", r.Area, r.Cell)
	}
	if r.AcT >= 0 {
		fmt.Fprintf(&b, ",%d", r.AcT)
	}
	return b.String()
}

// CMEError is a module's "+CME ERROR: <err>" (equipment) or "+CMS ERROR:
// <err>" (messaging) final result, with numeric or verbose text
// (AT+CMEE=1 or 2). It wraps ErrCommandFailed.
type CMEError struct {
	// Code is the numeric error, or -1 when the module sent text.
	Code int
	// Text is the module's text, or for a numeric code the 27.007 §9.2
	// meaning when known.
	Text string
	// SMS is true for +CMS ERROR.
	SMS bool
}

func (e *CMEError) Error() string {
	kind := "+CME ERROR"
	if e.SMS {
		kind = "+CMS ERROR"
	}
	switch {
	case e.Code < 0:
		return fmt.Sprintf("modem: %s: %s", kind, e.Text)
	case e.Text != "":
		return fmt.Sprintf("modem: %s: %d (%s)", kind, e.Code, e.Text)
	}
	return fmt.Sprintf("modem: %s: %d", kind, e.Code)
}

func (e *CMEError) Unwrap() error { return ErrCommandFailed }

// cmeText holds the 27.007 §9.2 meanings the update agent may meet.
var cmeText = map[int]string{
	0: "phone failure", 3: "operation not allowed", 4: "operation not supported",
	10: "sim not inserted", 11: "sim pin required", 13: "sim failure", 14: "sim busy",
	20: "memory full", 30: "no network service", 31: "network timeout", 50: "incorrect parameters",
	100: "unknown",
}

// ParseCMEError parses "+CME ERROR: <err>" or "+CMS ERROR: <err>".
func ParseCMEError(line string) (*CMEError, error) {
	e := &CMEError{}
	var rest string
	switch {
	case strings.HasPrefix(line, "+CME ERROR:"):
		rest = line[len("+CME ERROR:"):]
	case strings.HasPrefix(line, "+CMS ERROR:"):
		rest = line[len("+CMS ERROR:"):]
		e.SMS = true
	default:
		return nil, &SyntaxError{Line: line, Msg: "want +CME ERROR: or +CMS ERROR:"}
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return nil, &SyntaxError{Line: line, Offset: len(line), Msg: "empty error"}
	}
	if rest[0] >= '0' && rest[0] <= '9' {
		f := field{s: rest}
		code, err := intField(line, f, 0, 65535)
		if err != nil {
			return nil, err
		}
		e.Code, e.Text = code, cmeText[code]
		return e, nil
	}
	e.Code, e.Text = -1, rest
	return e, nil
}

// Identity is what ATI and AT+CGSN report.
type Identity struct {
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	// Revision is the firmware revision as ATI shows it ("Revision: …").
	Revision string `json:"revision,omitempty"`
	IMEI     string `json:"imei,omitempty"`
}

// ParseATI reads the lines of an ATI answer. Modules differ; the common
// shape (Quectel, SIMCom, u-blox with ATI0) is manufacturer, model, then
// "Revision: <fw>". A single line is taken as the model.
func ParseATI(lines []string) Identity {
	var id Identity
	var plain []string
	for _, l := range lines {
		if v, ok := cutLabel(l, "Revision:"); ok {
			id.Revision = v
			continue
		}
		plain = append(plain, l)
	}
	switch len(plain) {
	case 0:
	case 1:
		id.Model = plain[0]
	default:
		id.Manufacturer, id.Model = plain[0], plain[1]
	}
	return id
}

// ParseCGMR reads the answer to AT+CGMR: the firmware revision, bare or
// after "+CGMR:" or "Revision:".
func ParseCGMR(lines []string) (string, error) {
	for _, l := range lines {
		if v, ok := cutLabel(l, "+CGMR:"); ok {
			l = v
		} else if v, ok := cutLabel(l, "Revision:"); ok {
			l = v
		}
		l = strings.Trim(l, `" `)
		if l != "" {
			return l, nil
		}
	}
	return "", &SyntaxError{Msg: "no revision in AT+CGMR answer"}
}

func cutLabel(l, label string) (string, bool) {
	if len(l) >= len(label) && strings.EqualFold(l[:len(label)], label) {
		return strings.TrimSpace(l[len(label):]), true
	}
	return "", false
}

// finalResult reports whether line ends a command, and with which error.
func finalResult(line string) (final bool, err error) {
	switch line {
	case "OK":
		return true, nil
	case "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "ABORTED":
		return true, fmt.Errorf("%w: %s", ErrCommandFailed, line)
	}
	if strings.HasPrefix(line, "+CME ERROR:") || strings.HasPrefix(line, "+CMS ERROR:") {
		e, perr := ParseCMEError(line)
		if perr != nil {
			return true, fmt.Errorf("%w: %w", ErrCommandFailed, perr)
		}
		return true, e
	}
	return false, nil
}
