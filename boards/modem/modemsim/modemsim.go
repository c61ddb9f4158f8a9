package modemsim

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Power-up defaults of the simulated module.
const (
	DefaultManufacturer = "Quectel"
	DefaultModel        = "BG95-M3"
	DefaultRevision     = "BG95M3LAR02A03"
	DefaultIMEI         = "866123045678901"
	DefaultCapacity     = 1 << 20 // the module's room for a firmware file
)

type regState struct {
	n          int // the AT+CREG=<n> setting
	stat       int
	area, cell string
	act        int
}

// Modem is a simulated radio module on the master side of a
// pseudo-terminal. See the package documentation.
type Modem struct {
	report  func(format string, args ...any)
	closed  atomic.Bool
	master  *os.File
	path    string
	slaveFD int
	in      *byteReader

	wmu sync.Mutex // one write to the master at a time

	mu           sync.Mutex
	busy         bool     // a command line is being received or answered
	heldURCs     []string // URCs sent while busy, flushed after the answer
	echo         bool
	cmee         int
	manufacturer string
	model        string
	revision     string
	imei         string
	rssi, ber    int
	reg          map[string]*regState // "CREG", "CEREG"
	expect       []*Step
	once         []*Step
	commands     []string
	// firmware dialects (fota.go)
	capacity     int64         // largest file the module takes
	restartDelay time.Duration // how long the module is away when it restarts
	dataIdle     time.Duration // how long it waits for more bytes of an upload
	restarts     int

	dialect Dialect
	link    string     // the stable path of a module whose port comes and goes
	uart    bool       // the port stays across restarts
	fota    *fotaState // the Quectel and u-blox dialects' file system and update
	cut     atomic.Bool
	onCut   func()

	done chan struct{}
	wg   sync.WaitGroup
}

// Start opens a pseudo-terminal pair and runs a simulated module of
// o.Dialect on its master side until Close. Its Path is the slave's device
// path (a dialect's: a symbolic link in o.Dir), which the code under test
// opens like a UART. Without Linux pseudo-terminals the error wraps
// errors.ErrUnsupported.
func Start(o Options) (*Modem, error) {
	if o.Dialect != Generic && o.Dir == "" {
		return nil, errors.New("modemsim: a dialect module needs Options.Dir for its port's link")
	}
	master, slave, slaveFD, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("modemsim: %w", err)
	}
	report := o.Report
	if report == nil {
		report = func(string, ...any) {}
	}
	m := &Modem{
		report: report, master: master, path: slave, slaveFD: slaveFD,
		in:   &byteReader{f: master},
		echo: true, cmee: 0,
		manufacturer: DefaultManufacturer, model: DefaultModel,
		revision: DefaultRevision, imei: DefaultIMEI,
		rssi: 21, ber: 99,
		reg: map[string]*regState{
			"CREG":  {stat: 1, area: "1A2B", cell: "01C3D4E5", act: 0},
			"CEREG": {stat: 1, area: "1A2B", cell: "01C3D4E5", act: 7},
		},
		capacity: DefaultCapacity, restartDelay: 50 * time.Millisecond, dataIdle: time.Second,
		done: make(chan struct{}),
	}
	if o.Dialect != Generic {
		if err := m.startDialect(o); err != nil {
			master.Close()
			closeFD(slaveFD)
			return nil, fmt.Errorf("modemsim: %w", err)
		}
	}
	if o.Revision != "" {
		m.revision = o.Revision
	}
	m.wg.Add(1)
	go m.serve()
	return m, nil
}

// Path is the device path of the module's port: the pty slave, or for a
// dialect a symbolic link to it that follows the module's
// restarts.
func (m *Modem) Path() string {
	if m.link != "" {
		return m.link
	}
	return m.path
}

// Close stops the module and closes its port. Expectations (Expect,
// Once) that were never met are reported through Options.Report. Close
// may be called more than once.
func (m *Modem) Close() {
	if m.closed.Swap(true) {
		return
	}
	close(m.done)
	m.wmu.Lock()
	m.master.Close()
	m.wmu.Unlock()
	m.wg.Wait()
	closeFD(m.slaveFD)
	if m.link != "" {
		os.Remove(m.link) // no stale path to a dead port
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.expect {
		m.report("modemsim: expected command %q never came", s.pattern)
	}
	for _, s := range m.once {
		m.report("modemsim: command %q (Once) never came", s.pattern)
	}
}

// Step is a scripted answer to one command, set up by Expect or Once.
// Without Reply the module executes the command as usual and the other
// settings change how the answer travels.
type Step struct {
	mu       *sync.Mutex // the Modem's: the module reads steps as it runs
	pattern  string
	reply    []string
	hasReply bool
	delay    time.Duration
	urcMid   []string
	noise    []byte
	silent   bool
	lost     bool
	cme      int
}

// Reply replaces the module's answer with lines, sent verbatim each in
// CR LF framing; include the final result ("OK", "ERROR", …).
func (s *Step) Reply(lines ...string) *Step {
	return s.set(func() { s.reply, s.hasReply = lines, true })
}

// Delay holds the answer back by d, as a busy module does.
func (s *Step) Delay(d time.Duration) *Step { return s.set(func() { s.delay = d }) }

// URCMid sends unsolicited lines in the middle of the answer: after its
// first line (or before the final result of an answer without lines).
func (s *Step) URCMid(lines ...string) *Step {
	return s.set(func() { s.urcMid = append(s.urcMid, lines...) })
}

// Noise sends b before the answer and again after its first line.
func (s *Step) Noise(b []byte) *Step { return s.set(func() { s.noise = b }) }

// Silent makes the module ignore the command: no execution, no answer.
func (s *Step) Silent() *Step { return s.set(func() { s.silent = true }) }

// Lost executes the command but swallows the answer, as a lost line does.
func (s *Step) Lost() *Step { return s.set(func() { s.lost = true }) }

// CME answers with error code n, in the form AT+CMEE selects (ERROR,
// numeric or text).
func (s *Step) CME(n int) *Step { return s.set(func() { s.cme = n }) }

func (s *Step) set(f func()) *Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	return s
}

func (m *Modem) newStep(pattern string) *Step { return &Step{mu: &m.mu, pattern: pattern, cme: -1} }

// Expect queues a step for the next command, which must match pattern
// (case-insensitive; a trailing "*" matches any rest). While any Expect is
// queued, a command that does not match the first one fails the test and
// gets ERROR: this is the playback mode.
func (m *Modem) Expect(pattern string) *Step {
	s := m.newStep(pattern)
	m.mu.Lock()
	m.expect = append(m.expect, s)
	m.mu.Unlock()
	return s
}

// Once applies a step to the next command that matches pattern, whenever
// it comes; other commands are answered as usual.
func (m *Modem) Once(pattern string) *Step {
	s := m.newStep(pattern)
	m.mu.Lock()
	m.once = append(m.once, s)
	m.mu.Unlock()
	return s
}

func match(pattern, cmd string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return len(cmd) >= len(p) && strings.EqualFold(cmd[:len(p)], p)
	}
	return strings.EqualFold(pattern, cmd)
}

// Commands returns every command line the module received, in order.
func (m *Modem) Commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.commands...)
}

// SetIdentity sets what ATI, AT+CGMI/CGMM/CGMR and AT+CGSN report.
func (m *Modem) SetIdentity(manufacturer, model, revision, imei string) {
	m.mu.Lock()
	m.manufacturer, m.model, m.revision, m.imei = manufacturer, model, revision, imei
	m.mu.Unlock()
}

// Revision is the running firmware revision (changes after an update).
func (m *Modem) Revision() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revision
}

// Restarts counts the module's restarts after a firmware install.
func (m *Modem) Restarts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restarts
}

// VersionOf is the revision the simulated module reports after running
// image: the text after "MODEMFW " up to the first newline when the image
// starts so, else "FW-" and the image's CRC-32 in hex.
func VersionOf(image []byte) string {
	if rest, ok := bytes.CutPrefix(image, []byte("MODEMFW ")); ok {
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			return string(rest[:i])
		}
	}
	return fmt.Sprintf("FW-%08x", crc32.ChecksumIEEE(image))
}

// SetSignal sets what AT+CSQ reports (rssi 0..31 or 99, ber 0..7 or 99).
func (m *Modem) SetSignal(rssi, ber int) {
	m.mu.Lock()
	m.rssi, m.ber = rssi, ber
	m.mu.Unlock()
}

// SetEcho sets the echo state, as after ATE0/ATE1 (power-up: on).
func (m *Modem) SetEcho(on bool) {
	m.mu.Lock()
	m.echo = on
	m.mu.Unlock()
}

// SetRegistration changes the registration of cmd ("CREG" or "CEREG") and,
// as a module does when AT+CREG=1 or 2 enabled it, sends the URC.
func (m *Modem) SetRegistration(cmd string, stat int, area, cell string, act int) {
	m.mu.Lock()
	r := m.reg[cmd]
	if r == nil {
		m.mu.Unlock()
		m.report("modemsim: SetRegistration(%q): want CREG or CEREG", cmd)
		return
	}
	r.stat, r.area, r.cell, r.act = stat, area, cell, act
	n := r.n
	m.mu.Unlock()
	switch n {
	case 1:
		m.SendURC(fmt.Sprintf("+%s: %d", cmd, stat))
	case 2:
		m.SendURC(fmt.Sprintf("+%s: %d,%q,%q,%d", cmd, stat, area, cell, act))
	}
}

// SendURC sends an unsolicited line. Like a real module, it holds it back
// while a command line is being received or answered and sends it right
// after; use Step.URCMid to put one inside an answer.
func (m *Modem) SendURC(line string) {
	m.mu.Lock()
	if m.busy {
		m.heldURCs = append(m.heldURCs, line)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	m.write([]byte("\r\n" + line + "\r\n"))
}

// SendNoise writes b to the line at once, whatever the module is doing.
func (m *Modem) SendNoise(b []byte) { m.write(b) }

func (m *Modem) write(b []byte) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.master.Write(b) // fails only after stop
}

func (m *Modem) send(lines ...string) {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("\r\n" + l + "\r\n")
	}
	m.write(b.Bytes())
}

// wait waits d, or until the module stops; it reports false on stop.
func (m *Modem) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.done:
		return false
	}
}

// serve is the module's firmware: read a command line, answer it.
func (m *Modem) serve() {
	defer m.wg.Done()
	var line []byte
	for {
		c, err := m.in.readByte(time.Time{})
		if err != nil {
			if m.powerUp() { // the port dropped for a restart or a power cut
				line = line[:0]
				continue
			}
			return
		}
		m.mu.Lock()
		m.busy = true
		echo := m.echo
		m.mu.Unlock()
		if echo {
			m.write([]byte{c})
		}
		switch c {
		case '\r':
			cmd := string(line)
			line = line[:0]
			if len(cmd) >= 2 && strings.EqualFold(cmd[:2], "AT") {
				m.handle(cmd)
			}
			m.mu.Lock()
			held := m.heldURCs
			m.heldURCs, m.busy = nil, false
			m.mu.Unlock()
			m.send(held...)
		case '\n':
		default:
			if len(line) < 1024 {
				line = append(line, c)
			}
		}
	}
}

// answer is one command's answer: information lines and the final result.
type answer struct {
	lines []string
	final string
	after func() // runs after the answer is sent (a restart)
}

func (m *Modem) handle(cmd string) {
	m.mu.Lock()
	m.commands = append(m.commands, cmd)
	var found *Step
	switch {
	case len(m.expect) > 0:
		if !match(m.expect[0].pattern, cmd) {
			want := m.expect[0].pattern
			m.mu.Unlock()
			m.report("modemsim: unexpected command %q, want %q", cmd, want)
			m.send("ERROR")
			return
		}
		found, m.expect = m.expect[0], m.expect[1:]
	default:
		for i, s := range m.once {
			if match(s.pattern, cmd) {
				found = s
				m.once = append(m.once[:i:i], m.once[i+1:]...)
				break
			}
		}
	}
	step := &Step{cme: -1}
	if found != nil {
		c := *found // a copy: the test may still hold the Step
		step = &c
	}
	m.mu.Unlock()
	if step.silent {
		return
	}
	if step.noise != nil {
		m.write(step.noise)
	}
	if !m.wait(step.delay) {
		return
	}
	var a answer
	switch {
	case step.hasReply:
		a.lines = step.reply
	case step.cme >= 0:
		a.final = m.errorLine(step.cme)
	default:
		a = m.execute(cmd, step)
	}
	if step.lost {
		if a.after != nil {
			a.after()
		}
		return
	}
	var out []string
	for i, l := range a.lines {
		out = append(out, l)
		if i == 0 {
			out = append(out, step.urcMid...)
		}
	}
	if len(a.lines) == 0 {
		out = append(out, step.urcMid...)
	}
	if a.final != "" {
		out = append(out, a.final)
	}
	if step.noise != nil && len(out) > 1 {
		m.send(out[0])
		m.write(step.noise)
		out = out[1:]
	}
	m.send(out...)
	if a.after != nil {
		a.after()
	}
}

// errorLine is the error result in the form AT+CMEE selects.
func (m *Modem) errorLine(code int) string {
	m.mu.Lock()
	cmee := m.cmee
	m.mu.Unlock()
	switch cmee {
	case 1:
		return "+CME ERROR: " + strconv.Itoa(code)
	case 2:
		if t, ok := cmeText[code]; ok {
			return "+CME ERROR: " + t
		}
		return "+CME ERROR: unknown"
	}
	return "ERROR"
}

var cmeText = map[int]string{3: "operation not allowed", 4: "operation not supported",
	10: "SIM not inserted", 50: "incorrect parameters", 100: "unknown"}

func ok(lines ...string) answer { return answer{lines: lines, final: "OK"} }

// execute runs cmd as the module's firmware does.
func (m *Modem) execute(cmd string, step *Step) answer {
	u := strings.ToUpper(cmd)
	name, arg, hasArg := strings.Cut(u, "=")
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, handled := m.executeDialect(cmd, u, step); handled {
		return a
	}
	switch {
	case u == "AT":
		return ok()
	case u == "ATE0" || u == "ATE" || u == "ATE1":
		m.echo = u == "ATE1"
		return ok()
	case u == "ATI":
		return ok(m.manufacturer, m.model, "Revision: "+m.revision)
	case u == "AT+CGMI":
		return ok(m.manufacturer)
	case u == "AT+CGMM":
		return ok(m.model)
	case u == "AT+CGMR":
		return ok(m.revision)
	case u == "AT+CGSN":
		return ok(m.imei)
	case u == "AT+CSQ":
		return ok(fmt.Sprintf("+CSQ: %d,%d", m.rssi, m.ber))
	case name == "AT+CMEE" && hasArg:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > 2 {
			return answer{final: m.errorLineLocked(50)}
		}
		m.cmee = n
		return ok()
	case u == "AT+CREG?" || u == "AT+CEREG?":
		c := strings.TrimSuffix(u[3:], "?")
		r := m.reg[c]
		l := fmt.Sprintf("+%s: %d,%d", c, r.n, r.stat)
		if r.n == 2 && r.area != "" {
			l += fmt.Sprintf(",%q,%q,%d", r.area, r.cell, r.act)
		}
		return ok(l)
	case (name == "AT+CREG" || name == "AT+CEREG") && hasArg:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > 2 {
			return answer{final: m.errorLineLocked(50)}
		}
		m.reg[name[3:]].n = n
		return ok()
	}
	m.report("modemsim: unexpected command %q", cmd)
	return answer{final: "ERROR"}
}

func (m *Modem) errorLineLocked(code int) string {
	m.mu.Unlock()
	defer m.mu.Lock()
	return m.errorLine(code)
}

// byteReader reads the master side with deadlines and a small buffer.
type byteReader struct {
	f    *os.File
	buf  [512]byte
	r, w int
}

func (b *byteReader) fill(deadline time.Time) error {
	if err := b.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	n, err := b.f.Read(b.buf[:])
	b.r, b.w = 0, n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = errors.New("modemsim: empty read")
	}
	return err
}

func (b *byteReader) readByte(deadline time.Time) (byte, error) {
	if b.r == b.w {
		if err := b.fill(deadline); err != nil {
			return 0, err
		}
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// readFull fills p; it fails when no byte comes for idle.
func (b *byteReader) readFull(p []byte, idle time.Duration) error {
	for i := 0; i < len(p); {
		if b.r == b.w {
			if err := b.fill(time.Now().Add(idle)); err != nil {
				return err
			}
		}
		n := copy(p[i:], b.buf[b.r:b.w])
		b.r += n
		i += n
	}
	return nil
}

// drain discards buffered and waiting input.
func (b *byteReader) drain() {
	b.r, b.w = 0, 0
	for b.fill(time.Now()) == nil {
	}
	b.r, b.w = 0, 0
}
