package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds a command when neither the Config nor the caller's
// context says otherwise. Modules answer the commands used here within
// about 300 ms; 27.007 allows more for network queries.
const DefaultTimeout = 2 * time.Second

// DefaultBaud is the usual speed of a module's AT UART.
const DefaultBaud = 115200

// maxBody bounds the lines one command may collect.
const maxBody = 64

var (
	// ErrTimeout is returned when the module does not finish a command in
	// time. It is transient: the driver resynchronises before the next
	// command.
	ErrTimeout = errors.New("modem: command timed out")
	// ErrClosed is returned after Close or when the port fails.
	ErrClosed = errors.New("modem: port closed")
	// ErrBadCommand rejects a command that is not one printable AT line.
	ErrBadCommand = errors.New("modem: invalid command")
	// ErrNoControlLines is returned by Lines when the port has no modem
	// control lines (a pseudo-terminal, a 3-wire UART).
	ErrNoControlLines = errors.New("modem: modem-control lines unavailable")
	// ErrNotLinked is returned by Linked when the radio is not registered
	// or hears no signal.
	ErrNotLinked = errors.New("modem: radio not linked")
)

// URC is one unsolicited result code, e.g. "+CREG: 5" or "RING".
type URC struct {
	// Name is the part before ':' ("+CREG"), or the whole line.
	Name string
	Line string
}

// Config configures a Modem. The zero value works.
type Config struct {
	Logger *slog.Logger
	// Timeout bounds each command unless the context ends sooner
	// (default DefaultTimeout).
	Timeout time.Duration
	// Settle is how long the port must stay free of stray final results
	// after a resynchronisation (default 100 ms).
	Settle time.Duration
	// Echo makes Init leave the module's command echo on (ATE1); by
	// default Init turns it off (ATE0). The driver copes with either.
	Echo bool
	// OnURC receives unsolicited result codes, one at a time, on a
	// goroutine of the Modem; it may call the Modem's methods except
	// Close. Codes that arrive while it is busy are queued (up to 32, then
	// dropped).
	OnURC func(URC)
	// Baud is the UART speed (default DefaultBaud); Open sets the port to
	// it and the firmware transfer budgets each chunk's time on the wire
	// from it.
	Baud int
}

// request is one command in flight.
type request struct {
	cmd    string
	prefix string // "+CSQ:": lines the answer consists of; "" for free text
	lines  []string
	prompt chan struct{} // non-nil: the command expects "> "
	data   bool          // the command has a data phase
	sent   bool          // its data went out in full
	done   chan struct{}
	err    error
}

// Modem drives one AT command port. Commands are serialised; one goroutine
// reads the port and routes each line to the command in flight or, when it
// is unsolicited, to Config.OnURC.
type Modem struct {
	port io.ReadWriteCloser
	cfg  Config
	log  *slog.Logger
	sem  chan struct{} // one command at a time

	mu       sync.Mutex
	pending  *request
	readErr  error
	needSync bool
	late     *request // the command abandoned last, until resync
	dataLate bool     // late was a data command: the module may be in its data phase
	lastRx   time.Time
	stray    int // final results that arrived with no command in flight
	waiters  map[string][]chan string
	dropped  int // URCs dropped on a full queue
	noise    int

	urcs       chan URC
	readerDone chan struct{}
	urcDone    chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// New starts a driver on an open port: a serial port from Open, or any
// byte stream in tests. Reading starts at once; call Init before the first
// command unless the module is known to be set up. Close stops it.
func New(port io.ReadWriteCloser, cfg Config) *Modem {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 100 * time.Millisecond
	}
	if cfg.Baud <= 0 {
		cfg.Baud = DefaultBaud
	}
	m := &Modem{
		port:       port,
		cfg:        cfg,
		log:        cfg.Logger,
		sem:        make(chan struct{}, 1),
		waiters:    map[string][]chan string{},
		urcs:       make(chan URC, 32),
		readerDone: make(chan struct{}),
		urcDone:    make(chan struct{}),
	}
	go m.readLoop()
	go m.urcLoop()
	return m
}

// Close stops the driver and closes the port. It waits for the driver's
// goroutines, including a running OnURC.
func (m *Modem) Close() error {
	m.closeOnce.Do(func() {
		m.closeErr = m.port.Close()
		<-m.readerDone
		close(m.urcs)
		<-m.urcDone
	})
	return m.closeErr
}

func (m *Modem) readLoop() {
	defer close(m.readerDone)
	var sp Splitter
	buf := make([]byte, 256)
	for {
		n, err := m.port.Read(buf)
		if n > 0 {
			sp.Feed(buf[:n], m.route)
			m.mu.Lock()
			m.noise = sp.Dropped
			m.lastRx = time.Now()
			m.mu.Unlock()
		}
		if err != nil {
			m.mu.Lock()
			m.readErr = fmt.Errorf("%w: %w", ErrClosed, err)
			if r := m.pending; r != nil {
				m.pending = nil
				r.err = m.readErr
				close(r.done)
			}
			m.mu.Unlock()
			return
		}
	}
}

func (m *Modem) urcLoop() {
	defer close(m.urcDone)
	for u := range m.urcs {
		if m.cfg.OnURC != nil {
			m.cfg.OnURC(u)
		}
	}
}

// route sorts one line from the module. It runs on the reader goroutine.
func (m *Modem) route(line string, prompt bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.pending
	if prompt {
		if r != nil && r.prompt != nil {
			close(r.prompt)
			r.prompt = nil
		}
		return
	}
	if r == nil {
		if final, _ := finalResult(line); final {
			// A late answer to a command that timed out.
			m.stray++
			m.log.Debug("stray final result", slog.String("line", line))
			return
		}
		m.unsolicitedOrLate(line)
		return
	}
	if len(r.lines) == 0 && strings.EqualFold(line, r.cmd) {
		return // the echo of the command (ATE1)
	}
	if final, err := finalResult(line); final {
		if r.err == nil {
			r.err = err
		}
		m.pending = nil
		close(r.done)
		return
	}
	if r.owns(line) {
		if len(r.lines) == maxBody {
			r.err = &SyntaxError{Line: line, Msg: "answer too long"}
			return
		}
		r.lines = append(r.lines, line)
		return
	}
	m.unsolicitedOrLate(line)
}

// unsolicitedOrLate drops a line that belongs to the answer of the command
// abandoned last, and passes any other on as a URC; m.mu is held.
func (m *Modem) unsolicitedOrLate(line string) {
	if m.late != nil && m.late.owns(line) {
		m.log.Debug("late answer line", slog.String("cmd", m.late.cmd), slog.String("line", line))
		return
	}
	m.unsolicited(line)
}

// owns reports whether line belongs to r's answer rather than being
// unsolicited. Commands with a prefix own the lines with that prefix.
// Free-text answers (ATI, AT+CGMR) own every line except those that look
// like result codes of another command: "+XXX:" or "^XXX" with another
// name, and the well-known bare URCs.
func (r *request) owns(line string) bool {
	if r.prefix != "" {
		return strings.HasPrefix(line, r.prefix)
	}
	if line[0] == '+' || line[0] == '^' {
		name, _, _ := strings.Cut(line, ":")
		return strings.EqualFold(name, ownName(r.cmd))
	}
	return !bareURC[line]
}

// ownName is "+CGMR" for "AT+CGMR".
func ownName(cmd string) string {
	if len(cmd) < 3 {
		return ""
	}
	n := cmd[2:]
	if i := strings.IndexAny(n, "=?"); i >= 0 {
		n = n[:i]
	}
	return n
}

// bareURC lists unsolicited codes without a '+' that modules send.
var bareURC = map[string]bool{
	"RING": true, "RDY": true, "Call Ready": true, "SMS Ready": true,
	"POWERED DOWN": true, "NORMAL POWER DOWN": true, "UNDER-VOLTAGE WARNNING": true,
}

// unsolicited queues a URC; m.mu is held.
func (m *Modem) unsolicited(line string) {
	name, _, ok := strings.Cut(line, ":")
	if !ok {
		name = line
	}
	if ws := m.waiters[name]; len(ws) > 0 {
		for _, w := range ws {
			w <- line // buffered, one each
		}
		delete(m.waiters, name)
	}
	select {
	case m.urcs <- URC{Name: name, Line: line}:
	default:
		m.dropped++
		if m.dropped&(m.dropped-1) == 0 { // 1, 2, 4, 8…: a flood does not flood the log
			m.log.Warn("urc queue full, dropping", slog.String("line", line), slog.Int("dropped", m.dropped))
		}
	}
}

// waitFor registers interest in the next URC called name; the channel
// receives its line.
func (m *Modem) waitFor(name string) chan string {
	c := make(chan string, 1)
	m.mu.Lock()
	m.waiters[name] = append(m.waiters[name], c)
	m.mu.Unlock()
	return c
}

// unwait withdraws a waitFor that is no longer wanted.
func (m *Modem) unwait(name string, c chan string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ws := m.waiters[name]
	for i, w := range ws {
		if w == c {
			m.waiters[name] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(m.waiters[name]) == 0 {
		delete(m.waiters, name)
	}
}

// Command sends one AT command and returns the lines of its answer, without
// the echo, the final result and any URC. cmd is one line such as
// "AT+CSQ"; the driver adds the CR. A module's ERROR or +CME ERROR comes
// back as an error wrapping ErrCommandFailed (*CMEError for the latter).
//
// Command waits at most Config.Timeout or until ctx ends.
func (m *Modem) Command(ctx context.Context, cmd string) ([]string, error) {
	return m.exec(ctx, cmd, "", nil, 0)
}

// CommandTimeout is Command with its own timeout, for the commands that
// take long by nature (AT+COPS=? scans for minutes).
func (m *Modem) CommandTimeout(ctx context.Context, cmd string, timeout time.Duration) ([]string, error) {
	if timeout <= 0 {
		timeout = m.cfg.Timeout
	}
	return m.exec(ctx, cmd, "", nil, timeout)
}

func checkCommand(cmd string) error {
	if len(cmd) < 2 || len(cmd) > MaxLine || !strings.EqualFold(cmd[:2], "AT") {
		return fmt.Errorf("%w: %q", ErrBadCommand, cmd)
	}
	for i := 0; i < len(cmd); i++ {
		if cmd[i] < 0x20 || cmd[i] > 0x7e {
			return fmt.Errorf("%w: %q: byte %d is not printable", ErrBadCommand, cmd, i)
		}
	}
	return nil
}

// exec runs one command: prefix selects the answer lines (see owns); data,
// when not nil, is sent after the module's "> " prompt; timeout 0 means
// Config.Timeout.
func (m *Modem) exec(ctx context.Context, cmd, prefix string, data []byte, timeout time.Duration) ([]string, error) {
	if err := checkCommand(cmd); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-m.sem }()
	if ctx.Err() != nil { // select picks at random when both are ready
		return nil, context.Cause(ctx)
	}
	m.mu.Lock()
	sync := m.needSync
	m.mu.Unlock()
	if sync {
		if err := m.resync(ctx); err != nil {
			return nil, err
		}
	}
	return m.execLocked(ctx, cmd, prefix, data, timeout)
}

func (m *Modem) execLocked(ctx context.Context, cmd, prefix string, data []byte, timeout time.Duration) ([]string, error) {
	if timeout <= 0 {
		timeout = m.cfg.Timeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w: %s", ErrTimeout, cmd))
	defer cancel()

	r := &request{cmd: cmd, prefix: prefix, done: make(chan struct{})}
	var prompt chan struct{}
	if data != nil {
		prompt = make(chan struct{})
		r.prompt, r.data = prompt, true
	}
	m.mu.Lock()
	if m.readErr != nil {
		err := m.readErr
		m.mu.Unlock()
		return nil, err
	}
	m.pending = r
	m.mu.Unlock()

	if _, err := m.port.Write([]byte(cmd + "\r")); err != nil {
		m.abandon(r)
		return nil, fmt.Errorf("modem: write %s: %w", cmd, err)
	}
	if data != nil {
		select {
		case <-prompt:
			if _, err := m.port.Write(data); err != nil {
				m.abandon(r)
				return nil, fmt.Errorf("modem: write %s data: %w", cmd, err)
			}
			r.sent = true
		case <-r.done:
			if r.err == nil {
				return nil, fmt.Errorf("%w: %s: OK without a data prompt", ErrCommandFailed, cmd)
			}
			return nil, fmt.Errorf("%s: %w", cmd, r.err)
		case <-ctx.Done():
			m.abandon(r)
			return nil, context.Cause(ctx)
		}
	}
	select {
	case <-r.done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, r.err)
		}
		return r.lines, nil
	case <-ctx.Done():
		m.abandon(r)
		return nil, context.Cause(ctx)
	}
}

// abandon gives up on r: its late answer must not be taken for the next
// command's, so the next command resynchronises first.
func (m *Modem) abandon(r *request) {
	m.mu.Lock()
	if m.pending == r {
		m.pending = nil
	}
	if r.cmd != "AT" {
		m.late = r
	}
	if r.data && !r.sent {
		m.dataLate = true
	}
	m.needSync = true
	m.mu.Unlock()
}

// resync brings the dialogue back in step after a command was abandoned:
// it sends "AT" until an OK comes back and then no stray final result
// arrives for Config.Settle. A slow module answers the abandoned command
// first and the AT after it, so the stray OK shows up in that window.
func (m *Modem) resync(ctx context.Context) error {
	var last error
	for try := 0; try < 4; try++ {
		m.mu.Lock()
		dataLate := m.dataLate
		m.mu.Unlock()
		if dataLate {
			// The module may sit in the data phase of the abandoned
			// command and would take our AT for data: let it time out.
			if err := m.quiet(ctx, DataIdle+m.cfg.Settle); err != nil {
				return err
			}
		}
		m.mu.Lock()
		before := m.stray
		m.mu.Unlock()
		_, err := m.execLocked(ctx, "AT", "", nil, 0)
		if err != nil {
			last = err
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return err
			}
			continue
		}
		t := time.NewTimer(m.cfg.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
		m.mu.Lock()
		clean := m.stray == before
		if clean {
			m.needSync, m.late, m.dataLate = false, nil, false
		}
		m.mu.Unlock()
		if clean {
			return nil
		}
		m.log.Debug("late answers while resynchronising", slog.Int("try", try))
	}
	if last == nil {
		last = fmt.Errorf("%w: late answers keep arriving", ErrTimeout)
	}
	return fmt.Errorf("modem: resynchronise: %w", last)
}

// DataIdle is how long a module waits for the next byte of a data phase
// before it gives the chunk up (see the firmware transfer).
const DataIdle = time.Second

// quiet waits until nothing has arrived from the module for d.
func (m *Modem) quiet(ctx context.Context, d time.Duration) error {
	for {
		m.mu.Lock()
		left := d - time.Since(m.lastRx)
		m.mu.Unlock()
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// Init brings the module into the state the driver expects: it answers AT
// (tried a few times: a module may still be booting or the line may carry
// noise), echo as Config.Echo says, numeric +CME ERROR codes (AT+CMEE=1).
func (m *Modem) Init(ctx context.Context) error {
	var err error
	for try := 0; try < 3; try++ {
		if _, err = m.Command(ctx, "AT"); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("modem: no answer to AT: %w", err)
	}
	echo := "ATE0"
	if m.cfg.Echo {
		echo = "ATE1"
	}
	if _, err := m.Command(ctx, echo); err != nil {
		return fmt.Errorf("modem: set echo: %w", err)
	}
	if _, err := m.Command(ctx, "AT+CMEE=1"); err != nil {
		// Some modules lack it; errors then come as plain ERROR.
		m.log.Info("module refuses numeric errors", slog.Any("err", err))
	}
	return nil
}

// SetEcho turns the module's command echo on (ATE1) or off (ATE0).
func (m *Modem) SetEcho(ctx context.Context, on bool) error {
	cmd := "ATE0"
	if on {
		cmd = "ATE1"
	}
	_, err := m.Command(ctx, cmd)
	return err
}

// Identity reports manufacturer, model and revision (ATI) and the IMEI
// (AT+CGSN; left empty when the module refuses it).
func (m *Modem) Identity(ctx context.Context) (Identity, error) {
	lines, err := m.Command(ctx, "ATI")
	if err != nil {
		return Identity{}, err
	}
	id := ParseATI(lines)
	lines, err = m.Command(ctx, "AT+CGSN")
	switch {
	case errors.Is(err, ErrCommandFailed):
		m.log.Debug("no imei", slog.Any("err", err))
	case err != nil:
		return Identity{}, err
	default:
		for _, l := range lines {
			if v, ok := cutLabel(l, "+CGSN:"); ok {
				l = v
			}
			if l = strings.Trim(l, `" `); l != "" {
				id.IMEI = l
				break
			}
		}
	}
	return id, nil
}

// FirmwareVersion reports the module's firmware revision (AT+CGMR).
func (m *Modem) FirmwareVersion(ctx context.Context) (string, error) {
	lines, err := m.Command(ctx, "AT+CGMR")
	if err != nil {
		return "", err
	}
	v, err := ParseCGMR(lines)
	if err != nil {
		return "", fmt.Errorf("AT+CGMR: %w", err)
	}
	return v, nil
}

// Signal reports the received signal (AT+CSQ).
func (m *Modem) Signal(ctx context.Context) (Signal, error) {
	lines, err := m.exec(ctx, "AT+CSQ", "+CSQ:", nil, 0)
	if err != nil {
		return Signal{}, err
	}
	if len(lines) != 1 {
		return Signal{}, fmt.Errorf("AT+CSQ: %w: %d answer lines", ErrSyntax, len(lines))
	}
	return ParseCSQ(lines[0])
}

// queryReg asks AT+<cmd>? and parses the query answer. A URC of the same
// name that arrives meanwhile is told apart by its form (see Reg) and
// passed on to OnURC.
func (m *Modem) queryReg(ctx context.Context, cmd string) (Reg, error) {
	lines, err := m.exec(ctx, "AT+"+cmd+"?", "+"+cmd+":", nil, 0)
	if err != nil {
		return Reg{}, err
	}
	var found *Reg
	for _, l := range lines {
		r, err := ParseReg(l)
		if err != nil {
			return Reg{}, fmt.Errorf("AT+%s?: %w", cmd, err)
		}
		if r.IsURC() {
			m.mu.Lock()
			m.unsolicited(l)
			m.mu.Unlock()
			continue
		}
		if found == nil {
			found = &r
		}
	}
	if found == nil {
		return Reg{}, fmt.Errorf("AT+%s?: %w: no answer line", cmd, ErrSyntax)
	}
	return *found, nil
}

// Registration is the module's network registration, circuit switched
// (AT+CREG?) and EPS (AT+CEREG?). A domain the module does not support
// (it answers ERROR) is nil.
type Registration struct {
	CS  *Reg `json:"cs,omitempty"`
	EPS *Reg `json:"eps,omitempty"`
}

// Registered reports whether any domain is registered (home or roaming).
func (r Registration) Registered() bool {
	return r.CS != nil && r.CS.Stat.Registered() || r.EPS != nil && r.EPS.Stat.Registered()
}

// Registration queries AT+CEREG? and AT+CREG?.
func (m *Modem) Registration(ctx context.Context) (Registration, error) {
	var out Registration
	for _, q := range []struct {
		cmd string
		dst **Reg
	}{{"CEREG", &out.EPS}, {"CREG", &out.CS}} {
		r, err := m.queryReg(ctx, q.cmd)
		switch {
		case err == nil:
			*q.dst = &r
		case errors.Is(err, ErrCommandFailed):
			m.log.Debug("registration domain unsupported", slog.String("cmd", q.cmd), slog.Any("err", err))
		default:
			return Registration{}, err
		}
	}
	if out.CS == nil && out.EPS == nil {
		return out, fmt.Errorf("%w: module answers neither AT+CREG? nor AT+CEREG?", ErrCommandFailed)
	}
	return out, nil
}

// Status is everything `meterupd modem` and `meterupd status` show.
type Status struct {
	Identity     Identity     `json:"identity"`
	Firmware     string       `json:"firmware"`
	Registration Registration `json:"registration"`
	Signal       Signal       `json:"signal"`
	// SignalDBm is the RSSI in dBm, absent when unknown.
	SignalDBm *int `json:"signal_dbm,omitempty"`
}

// Status collects identity, firmware, registration and signal.
func (m *Modem) Status(ctx context.Context) (Status, error) {
	var s Status
	var err error
	if s.Identity, err = m.Identity(ctx); err != nil {
		return s, err
	}
	if s.Firmware, err = m.FirmwareVersion(ctx); err != nil {
		return s, err
	}
	if s.Registration, err = m.Registration(ctx); err != nil {
		return s, err
	}
	if s.Signal, err = m.Signal(ctx); err != nil {
		return s, err
	}
	if d, ok := s.Signal.DBm(); ok {
		s.SignalDBm = &d
	}
	return s, nil
}

// Linked is the health check "the radio links": registered (home or
// roaming) and hearing a signal. It returns nil, an error wrapping
// ErrNotLinked that says why, or the failure to ask.
func (m *Modem) Linked(ctx context.Context) error {
	reg, err := m.Registration(ctx)
	if err != nil {
		return err
	}
	if !reg.Registered() {
		return fmt.Errorf("%w: not registered", ErrNotLinked)
	}
	sig, err := m.Signal(ctx)
	if err != nil {
		return err
	}
	if !sig.Known() {
		return fmt.Errorf("%w: no signal", ErrNotLinked)
	}
	return nil
}

// Noise reports how many bytes of line noise the driver has dropped.
func (m *Modem) Noise() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.noise
}
