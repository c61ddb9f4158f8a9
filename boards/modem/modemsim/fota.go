package modemsim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func init() {
	// The dialects' error codes (Quectel file errors, u-blox FFS errors).
	for code, text := range map[int]string{400: "invalid input value", 405: "file not found",
		407: "file already existed", 421: "time out", 502: "fota package mismatch",
		1612: "FILE NOT FOUND", 1614: "FFS TIMEOUT"} {
		cmeText[code] = text
	}
}

// Dialect selects which module the simulator is.
type Dialect int

const (
	// Generic is a BG95 that answers the status commands only.
	Generic Dialect = iota
	// Quectel is a BG95-M3 with its file system (AT+QFLST, AT+QFDEL,
	// AT+QFUPL) and DFOTA (AT+QFOTADL, +QIND URCs, AT+QGMR).
	Quectel
	// UBlox is a SARA-R410M with FOAT (AT+UDELFILE, AT+UDWNFILE,
	// AT+UFWINSTALL) and factory settings after an install.
	UBlox
)

// Options configures Start.
type Options struct {
	Dialect Dialect
	// Dir holds a dialect module's port link (Path), which follows the
	// module across restarts: required for Quectel and UBlox.
	Dir string
	// Revision, when set, is the firmware revision the module runs at
	// power-up (default: the dialect's).
	Revision string
	// Report receives the simulator's complaints: a command it does not
	// know, a scripted expectation unmet. Tests fail on them; a module
	// run as a program logs them. Nil: they are dropped.
	Report func(format string, args ...any)
	// UART makes the port stay while the module restarts, as a UART's
	// does: the module is silent (and loses what it is sent) meanwhile.
	// By default the port vanishes and comes back, as a USB port does.
	UART bool
}

// The simulated modules' update files and revisions.
const (
	QuectelFile     = "UFS:update.zip"
	QuectelFOTAPath = "/usrdata/UFS/update.zip"
	UBloxRevision   = "L0.0.00.00.05.08"
)

// fotaState is a dialect module's file system and the update it runs.
// Guarded by Modem.mu.
type fotaState struct {
	files map[string][]byte
	// phase is what the module does; it decides what a power cut leaves:
	// "upload", "updating", "restore" (Quectel), "install" (u-blox).
	phase  string
	target string // the revision being installed; "" when the file is bad

	endError     int   // Quectel: END with this error instead of patching
	corrupt      bool  // the next upload is stored with one bit flipped
	cutUploadAt  int64 // power cut after this many upload bytes (0: none)
	cutAt        string
	neverReady   bool // after its next restart the module never answers
	mute         bool
	installDelay time.Duration
	stepDelay    time.Duration
	offTime      time.Duration
	apn          string
	provisioned  []string
}

func (m *Modem) startDialect(o Options) error {
	m.dialect = o.Dialect
	m.uart = o.UART
	m.fota = &fotaState{files: map[string][]byte{}, installDelay: 300 * time.Millisecond,
		stepDelay: 5 * time.Millisecond, offTime: 50 * time.Millisecond}
	if o.Dialect == UBlox {
		m.manufacturer, m.model, m.revision, m.imei = "u-blox", "SARA-R410M-02B", UBloxRevision, "352753090123456"
		m.fota.apn = "factory.apn"
	}
	m.link = filepath.Join(o.Dir, "ttyMODEM")
	return m.relink()
}

// relink points the stable path at the current pty slave, atomically.
func (m *Modem) relink() error {
	tmp := m.link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(m.path, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, m.link)
}

// OnPowerCut sets a function PowerCut calls first: the host loses power
// with the module (a test cancels the driver's context there).
func (m *Modem) OnPowerCut(f func()) {
	m.mu.Lock()
	m.onCut = f
	m.mu.Unlock()
}

// PowerCut cuts the module's power (and, through OnPowerCut, the host's):
// the port vanishes at once; a moment later the module powers up on a new
// pseudo-terminal behind the same Path, in the state its maker documents
// for the step it was in (Quectel: a partial upload stays, a cut while
// patching boots the old firmware, a cut while restoring continues the
// restore; u-blox: a partial upload is deleted, a cut install continues).
func (m *Modem) PowerCut() {
	if m.link == "" {
		m.report("modemsim: PowerCut needs a module of a dialect (Options.Dialect)")
		return
	}
	if m.cut.Swap(true) {
		return
	}
	m.mu.Lock()
	f := m.onCut
	m.mu.Unlock()
	if f != nil {
		f()
	}
	m.wmu.Lock()
	m.master.Close()
	m.wmu.Unlock()
}

// CutUploadAt makes the next upload end in a power cut after n bytes.
func (m *Modem) CutUploadAt(n int64) { m.setFOTA(func(f *fotaState) { f.cutUploadAt = n }) }

// CutAt makes the module lose power when its update reaches stage:
// "updating", "restore" (Quectel) or "install" (u-blox).
func (m *Modem) CutAt(stage string) { m.setFOTA(func(f *fotaState) { f.cutAt = stage }) }

// CorruptNextUpload stores the next upload with one bit flipped, as a
// module with a line error and no flow control does.
func (m *Modem) CorruptNextUpload() { m.setFOTA(func(f *fotaState) { f.corrupt = true }) }

// FOTAError makes the next Quectel update end with +QIND: "FOTA","END",code.
func (m *Modem) FOTAError(code int) { m.setFOTA(func(f *fotaState) { f.endError = code }) }

// NeverReady makes the module never answer again after its next restart.
func (m *Modem) NeverReady() { m.setFOTA(func(f *fotaState) { f.neverReady = true }) }

// SetInstallDelay sets how long a u-blox module is away installing.
func (m *Modem) SetInstallDelay(d time.Duration) {
	m.setFOTA(func(f *fotaState) { f.installDelay = d })
}

// File returns a file of the module's file system and whether it exists.
func (m *Modem) File(name string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fota == nil {
		return nil, false
	}
	b, ok := m.fota.files[name]
	return append([]byte(nil), b...), ok
}

// Provisioned reports the APN and the other configuration commands the
// module received since its last factory reset.
func (m *Modem) Provisioned() (apn string, cmds []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fota == nil {
		return "", nil
	}
	return m.fota.apn, append([]string(nil), m.fota.provisioned...)
}

func (m *Modem) setFOTA(f func(*fotaState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fota == nil {
		m.report("modemsim: needs a module of a dialect (Options.Dialect)")
		return
	}
	f(m.fota)
}

// newPort replaces the pseudo-terminal: the port is back at Path.
// It runs on the serve goroutine.
func (m *Modem) newPort() bool {
	master, slave, fd, err := openPTY()
	if err != nil {
		m.report("modemsim: new port: %v", err)
		return false
	}
	m.wmu.Lock()
	select {
	case <-m.done:
		// Close came while the port was away: it closed the old master
		// (Close closes done before it takes wmu); a new one would never
		// be closed, and serve would wait on it for ever.
		m.wmu.Unlock()
		master.Close()
		closeFD(fd)
		return false
	default:
	}
	old := m.slaveFD
	m.master, m.in, m.slaveFD = master, &byteReader{f: master}, fd
	m.wmu.Unlock()
	closeFD(old)
	m.mu.Lock()
	m.path = slave
	err = m.relink()
	m.mu.Unlock()
	if err != nil {
		m.report("modemsim: relink: %v", err)
	}
	return err == nil
}

// restart drops the port for d and brings it back, unless a power cut or
// the end of the test comes first (then it reports false).
func (m *Modem) restart(d time.Duration) bool {
	if m.uart {
		if !m.wait(d) || m.cut.Load() {
			return false
		}
		m.in.drain()
		return true
	}
	m.wmu.Lock()
	m.master.Close()
	m.wmu.Unlock()
	if !m.wait(d) || m.cut.Load() {
		return false
	}
	return m.newPort()
}

// step pauses between URCs; false after a power cut or at the end.
func (m *Modem) step(stage string) bool {
	m.mu.Lock()
	d := m.fota.stepDelay
	cutHere := m.fota.cutAt != "" && m.fota.cutAt == stage
	if cutHere {
		m.fota.cutAt = ""
	}
	m.mu.Unlock()
	if cutHere {
		m.PowerCut()
	}
	return m.wait(d) && !m.cut.Load()
}

// powerUp runs on the serve goroutine when the port failed: after a power
// cut the module comes back and reports true; at the end of the test false.
func (m *Modem) powerUp() bool {
	select {
	case <-m.done:
		return false
	default:
	}
	if m.link == "" || !m.cut.Load() {
		return false
	}
	m.mu.Lock()
	off := m.fota.offTime
	m.mu.Unlock()
	if !m.wait(off) {
		return false
	}
	m.cut.Store(false)
	m.mu.Lock()
	f := m.fota
	phase := f.phase
	f.phase = ""
	m.echo, m.cmee = true, 0
	switch phase {
	case "upload":
		if m.dialect == UBlox {
			// "If the module shuts down during the file storing, all
			// bytes of the file will be deleted" (SARA-R4 manual, 16.2).
			for k := range f.files {
				delete(f.files, k)
			}
		}
	case "restore", "install":
		f.phase = phase // the module finishes what it started
	}
	m.mu.Unlock()
	switch phase {
	case "restore":
		if !m.newPort() {
			return false
		}
		m.send(`+QIND: "FOTA","Last upgrade was not finished,continue upgrade"`)
		m.restore()
		return true
	case "install":
		// A UART is back with the power (the module stays silent); a
		// USB port only when the install is done.
		if m.uart && !m.newPort() {
			return false
		}
		m.install()
		return true
	}
	if !m.newPort() {
		return false
	}
	if m.dialect == Quectel {
		m.send("RDY")
	}
	return true
}

// executeDialect runs the commands of the Quectel and u-blox dialects;
// m.mu is held (and released while data comes in).
func (m *Modem) executeDialect(cmd, u string, step *Step) (answer, bool) {
	f := m.fota
	if f == nil {
		return answer{}, false
	}
	if f.mute {
		return answer{}, true
	}
	name, arg, hasArg := strings.Cut(u, "=")
	args := splitArgs(cmd)
	switch m.dialect {
	case Quectel:
		switch {
		case u == "AT+QGMR":
			return ok(m.revision), true
		case name == "AT+QFLST" && hasArg:
			var lines []string
			if b, ok := f.files[args[0]]; ok {
				lines = append(lines, fmt.Sprintf("+QFLST: %q,%d", args[0], len(b)))
			}
			return ok(lines...), true
		case name == "AT+QFDEL" && hasArg:
			if _, ok := f.files[args[0]]; !ok {
				return answer{final: m.errorLineLocked(405)}, true
			}
			delete(f.files, args[0])
			return ok(), true
		case name == "AT+QFUPL" && hasArg:
			return m.qfupl(args), true
		case name == "AT+QFOTADL" && hasArg:
			if args[0] != QuectelFOTAPath {
				return answer{final: m.errorLineLocked(405)}, true
			}
			b, ok := f.files[QuectelFile]
			if !ok {
				return answer{final: m.errorLineLocked(405)}, true
			}
			f.target = ""
			if bytes.HasPrefix(b, []byte("MODEMFW ")) {
				f.target = VersionOf(b)
			}
			return answer{final: "OK", after: m.dfota}, true
		}
	case UBlox:
		switch {
		case name == "AT+UDELFILE" && hasArg:
			if len(args) != 2 || args[1] != "FOAT" {
				return answer{final: m.errorLineLocked(50)}, true
			}
			if _, ok := f.files[args[0]]; !ok {
				return answer{final: m.errorLineLocked(1612)}, true
			}
			delete(f.files, args[0])
			return ok(), true
		case name == "AT+UDWNFILE" && hasArg:
			return m.udwnfile(args), true
		case name == "AT+UFWINSTALL":
			if len(f.files) == 0 {
				return answer{final: m.errorLineLocked(1612)}, true
			}
			f.target = ""
			for _, b := range f.files {
				if bytes.HasPrefix(b, []byte("MODEMFW ")) {
					f.target = VersionOf(b)
				}
			}
			f.phase = "install"
			return answer{final: "OK", after: m.install}, true
		case name == "AT+CGDCONT" && hasArg:
			if len(args) != 3 || args[0] != "1" {
				return answer{final: m.errorLineLocked(50)}, true
			}
			f.apn = args[2]
			return ok(), true
		case u == "AT+CGDCONT?":
			return ok(fmt.Sprintf("+CGDCONT: 1,\"IP\",%q,\"0.0.0.0\",0,0", f.apn)), true
		case (name == "AT+UMNOPROF" || name == "AT+URAT" || name == "AT+CFUN" || name == "AT+UBANDMASK") && hasArg:
			f.provisioned = append(f.provisioned, cmd)
			return ok(), true
		}
	}
	_ = arg
	_ = step
	return answer{}, false
}

// splitArgs splits the parameters after '=': quoted strings lose their
// quotes.
func splitArgs(cmd string) []string {
	_, rest, _ := strings.Cut(cmd, "=")
	var out []string
	for _, a := range strings.Split(rest, ",") {
		out = append(out, strings.Trim(strings.TrimSpace(a), `"`))
	}
	return out
}

// receive reads the data phase of an upload into file, appending, with
// the module's power-cut and corruption knobs. m.mu is held on entry and
// exit and released meanwhile. It reports whether all size bytes came.
func (m *Modem) receive(file string, size int64, ack bool) (cut, complete bool) {
	f := m.fota
	f.phase = "upload"
	cutAt, corrupt := f.cutUploadAt, f.corrupt
	f.cutUploadAt, f.corrupt = 0, false
	idle := m.dataIdle
	m.mu.Unlock()
	defer m.mu.Lock()
	buf := make([]byte, 1024)
	var got int64
	for got < size {
		n := int64(len(buf))
		if size-got < n {
			n = size - got
		}
		if cutAt > 0 && got+n > cutAt {
			n = cutAt - got
		}
		err := m.in.readFull(buf[:n], idle)
		if err != nil {
			m.mu.Lock()
			f.phase = ""
			m.mu.Unlock()
			return false, false
		}
		p := append([]byte(nil), buf[:n]...)
		if corrupt && got == 0 {
			p[len(p)/2] ^= 0x10
		}
		m.mu.Lock()
		f.files[file] = append(f.files[file], p...)
		m.mu.Unlock()
		got += n
		if cutAt > 0 && got >= cutAt {
			m.PowerCut()
			return true, false
		}
		if ack && got%1024 == 0 {
			m.write([]byte("A"))
		}
	}
	m.mu.Lock()
	f.phase = ""
	m.mu.Unlock()
	return false, true
}

// qfupl: AT+QFUPL="<file>",<size>[,<timeout>[,<ack>]].
func (m *Modem) qfupl(args []string) answer {
	f := m.fota
	if len(args) < 2 || len(args) > 4 {
		return answer{final: m.errorLineLocked(400)}
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || size <= 0 || size > m.capacity {
		return answer{final: m.errorLineLocked(400)}
	}
	ack := len(args) == 4 && args[3] == "1"
	if _, exists := f.files[args[0]]; exists {
		return answer{final: m.errorLineLocked(407)} // file already existed
	}
	f.files[args[0]] = nil
	m.mu.Unlock()
	m.write([]byte("\r\nCONNECT\r\n"))
	m.mu.Lock()
	cut, complete := m.receive(args[0], size, ack)
	if cut {
		return answer{}
	}
	data := f.files[args[0]]
	if !complete {
		// The module's data timeout: it keeps what came (as after +++).
		return answer{final: m.errorLineLocked(421)}
	}
	return ok(fmt.Sprintf("+QFUPL: %d,%x", len(data), checksum16(data)))
}

// udwnfile: AT+UDWNFILE="<name>",<size>,"FOAT"; appends to an existing
// file as the manual says.
func (m *Modem) udwnfile(args []string) answer {
	if len(args) != 3 || args[2] != "FOAT" {
		return answer{final: m.errorLineLocked(50)}
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || size <= 0 || size > m.capacity {
		return answer{final: m.errorLineLocked(50)}
	}
	m.mu.Unlock()
	m.write([]byte("\r\n>"))
	m.mu.Lock()
	cut, complete := m.receive(args[0], size, false)
	if cut {
		return answer{}
	}
	if !complete {
		return answer{final: m.errorLineLocked(1614)} // FFS TIMEOUT
	}
	return ok()
}

// dfota runs a Quectel DFOTA after AT+QFOTADL's OK, on the serve goroutine.
func (m *Modem) dfota() {
	m.send(`+QIND: "FOTA","START"`)
	m.mu.Lock()
	f := m.fota
	f.phase = "updating"
	code := f.endError
	f.endError = 0
	if code == 0 && f.target == "" {
		code = 502 // not a delta for this firmware
	}
	m.mu.Unlock()
	for pct := 0; pct <= 100; pct += 25 {
		if !m.step("updating") {
			return
		}
		if code != 0 && pct == 50 {
			m.mu.Lock()
			f.phase = ""
			m.mu.Unlock()
			m.send(fmt.Sprintf(`+QIND: "FOTA","END",%d`, code))
			return
		}
		m.send(fmt.Sprintf(`+QIND: "FOTA","UPDATING",%d`, pct))
	}
	m.mu.Lock()
	f.phase = "restore"
	m.mu.Unlock()
	m.restore()
}

// restore copies the patched firmware in place, then the module restarts.
func (m *Modem) restore() {
	for pct := 0; pct <= 100; pct += 50 {
		if !m.step("restore") {
			return
		}
		m.send(fmt.Sprintf(`+QIND: "FOTA","RESTORE",%d`, pct))
	}
	m.mu.Lock()
	f := m.fota
	m.revision = f.target
	delete(f.files, QuectelFile)
	f.phase = ""
	m.restarts++
	delay := m.restartDelay
	m.mu.Unlock()
	m.send(`+QIND: "FOTA","END",0`)
	m.wait(m.fota.stepDelay)
	if !m.restart(delay) {
		return
	}
	m.mu.Lock()
	never := f.neverReady
	f.mute = never
	m.echo, m.cmee = !never, 0
	m.mu.Unlock()
	if !never {
		m.send("RDY")
	}
}

// install is a u-blox FOAT install: the module resets, its port is gone
// while it installs, and it comes back with the new firmware (or its old
// one, when the file was bad) and factory settings.
func (m *Modem) install() {
	m.mu.Lock()
	d := m.fota.installDelay
	cutHere := m.fota.cutAt == "install"
	if cutHere {
		m.fota.cutAt = ""
	}
	m.mu.Unlock()
	if cutHere {
		m.wmu.Lock()
		m.master.Close()
		m.wmu.Unlock()
		m.wait(d / 2)
		m.PowerCut()
		return
	}
	m.wait(m.fota.stepDelay) // the OK leaves before the reset
	if !m.restart(d) {
		return
	}
	m.mu.Lock()
	f := m.fota
	if f.target != "" {
		m.revision = f.target
	}
	for k := range f.files {
		delete(f.files, k)
	}
	f.phase = ""
	f.apn, f.provisioned = "", nil
	m.echo, m.cmee = true, 0
	f.mute = f.neverReady
	m.echo = !f.neverReady
	m.restarts++
	m.mu.Unlock()
}

// checksum16 is AT+QFUPL's checksum (see package modem).
func checksum16(b []byte) uint16 {
	var s uint16
	for i := 0; i+1 < len(b); i += 2 {
		s ^= uint16(b[i])<<8 | uint16(b[i+1])
	}
	if len(b)%2 == 1 {
		s ^= uint16(b[len(b)-1]) << 8
	}
	return s
}

// PutFile stores a file in the module's file system, as an earlier
// (perhaps interrupted) upload left it.
func (m *Modem) PutFile(name string, data []byte) {
	m.setFOTA(func(f *fotaState) { f.files[name] = append([]byte(nil), data...) })
}

// State is what a dialect module keeps across a power cycle: its firmware
// revision and its file system.
type State struct {
	Revision string
	Files    map[string][]byte
}

// Save returns the module's State once no update is under way in it (it
// waits up to d for one to end), and whether it was idle.
func (m *Modem) Save(d time.Duration) (State, bool) {
	deadline := time.Now().Add(d)
	for {
		m.mu.Lock()
		idle := m.fota == nil || m.fota.phase == ""
		if idle || time.Now().After(deadline) {
			st := State{Revision: m.revision, Files: map[string][]byte{}}
			if m.fota != nil {
				for k, v := range m.fota.files {
					st.Files[k] = append([]byte(nil), v...)
				}
			}
			m.mu.Unlock()
			return st, idle
		}
		m.mu.Unlock()
		if !m.wait(10 * time.Millisecond) {
			return State{}, false
		}
	}
}

// Load puts the module in st, as if a module in that state replaced it
// (a test that replays one power cut twice from the same flash).
func (m *Modem) Load(st State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revision = st.Revision
	if m.fota != nil {
		m.fota.files = map[string][]byte{}
		for k, v := range st.Files {
			m.fota.files[k] = append([]byte(nil), v...)
		}
	}
}
