package modem_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meterupd/boards/modem"
	"meterupd/boards/modem/modemtest"
)

// urcs collects the URCs a Modem delivers.
type urcs struct {
	mu    sync.Mutex
	lines []string
	c     chan string
}

func newURCs() *urcs { return &urcs{c: make(chan string, 64)} }

func (u *urcs) handle(x modem.URC) {
	u.mu.Lock()
	u.lines = append(u.lines, x.Line)
	u.mu.Unlock()
	u.c <- x.Line
}

// next waits for the next URC.
func (u *urcs) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-u.c:
		return l
	case <-time.After(5 * time.Second):
		t.Fatalf("no URC arrived")
		return ""
	}
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// open starts a simulated module and opens its pty like a UART.
func open(t *testing.T, cfg modem.Config) (*modem.Modem, *modemtest.Modem) {
	t.Helper()
	path, sim := modemtest.Start(t)
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, path, cfg)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	return m, sim
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStatusOverPty(t *testing.T) {
	m, sim := open(t, modem.Config{})
	got, err := m.Status(ctx(t))
	if err != nil {
		t.Fatalf("Status = %v", err)
	}
	dbm := -113 + 2*21
	want := modem.Status{
		Identity: modem.Identity{Manufacturer: modemtest.DefaultManufacturer, Model: modemtest.DefaultModel,
			Revision: modemtest.DefaultRevision, IMEI: modemtest.DefaultIMEI},
		Firmware: modemtest.DefaultRevision,
		Registration: modem.Registration{
			CS:  &modem.Reg{Cmd: "CREG", Mode: 0, Stat: modem.RegisteredHome, AcT: -1},
			EPS: &modem.Reg{Cmd: "CEREG", Mode: 0, Stat: modem.RegisteredHome, AcT: -1},
		},
		Signal:    modem.Signal{RSSI: 21, BER: 99},
		SignalDBm: &dbm,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Status mismatch (-want +got):\n%s", d)
	}
	if err := m.Linked(ctx(t)); err != nil {
		t.Errorf("Linked = %v, want nil", err)
	}
	// Init turned echo off and numeric errors on.
	cmds := sim.Commands()
	if d := cmp.Diff([]string{"AT", "ATE0", "AT+CMEE=1"}, cmds[:3]); d != "" {
		t.Errorf("Init commands (-want +got):\n%s", d)
	}
}

func TestEchoOnAndOff(t *testing.T) {
	for _, echo := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[echo], func(t *testing.T) {
			m, sim := open(t, modem.Config{Echo: echo})
			for i := 0; i < 3; i++ {
				v, err := m.FirmwareVersion(ctx(t))
				if err != nil || v != modemtest.DefaultRevision {
					t.Fatalf("FirmwareVersion = %q, %v; want %q", v, err, modemtest.DefaultRevision)
				}
				id, err := m.Identity(ctx(t))
				if err != nil || id.Model != modemtest.DefaultModel {
					t.Fatalf("Identity = %+v, %v", id, err)
				}
			}
			// Switch at run time: both directions keep working.
			if err := m.SetEcho(ctx(t), !echo); err != nil {
				t.Fatalf("SetEcho(%v) = %v", !echo, err)
			}
			if _, err := m.Signal(ctx(t)); err != nil {
				t.Fatalf("Signal after SetEcho = %v", err)
			}
			want := map[bool]string{false: "ATE0", true: "ATE1"}[echo]
			if got := sim.Commands()[1]; got != want {
				t.Errorf("Init sent %q, want %q", got, want)
			}
		})
	}
}

func TestURCMidResponse(t *testing.T) {
	u := newURCs()
	m, sim := open(t, modem.Config{OnURC: u.handle})
	sim.Once("AT+CSQ").URCMid("+CEREG: 5", "RING")
	sim.Once("ATI").URCMid("+QIND: \"csq\",18,99")
	sim.Once("AT+CGMR").URCMid("+CREG: 2")

	s, err := m.Signal(ctx(t))
	if err != nil || s != (modem.Signal{RSSI: 21, BER: 99}) {
		t.Errorf("Signal = %+v, %v", s, err)
	}
	id, err := m.Identity(ctx(t))
	if err != nil {
		t.Fatalf("Identity = %v", err)
	}
	if id.Manufacturer != modemtest.DefaultManufacturer || id.Model != modemtest.DefaultModel || id.Revision != modemtest.DefaultRevision {
		t.Errorf("Identity = %+v: URC leaked into the answer", id)
	}
	v, err := m.FirmwareVersion(ctx(t))
	if err != nil || v != modemtest.DefaultRevision {
		t.Errorf("FirmwareVersion = %q, %v", v, err)
	}
	want := []string{"+CEREG: 5", "RING", "+QIND: \"csq\",18,99", "+CREG: 2"}
	for _, w := range want {
		if got := u.next(t); got != w {
			t.Errorf("URC = %q, want %q", got, w)
		}
	}
}

func TestRegistrationURCDuringQuery(t *testing.T) {
	u := newURCs()
	m, sim := open(t, modem.Config{OnURC: u.handle})
	if _, err := m.Command(ctx(t), "AT+CREG=2"); err != nil {
		t.Fatalf("AT+CREG=2: %v", err)
	}
	// The URC form of +CREG: arrives inside the answer to AT+CREG?.
	sim.Once("AT+CREG?").Reply(`+CREG: 5,"00FF","0000ABCD",0`, `+CREG: 2,5,"00FF","0000ABCD",0`, "OK")
	reg, err := m.Registration(ctx(t))
	if err != nil {
		t.Fatalf("Registration = %v", err)
	}
	want := &modem.Reg{Cmd: "CREG", Mode: 2, Stat: modem.RegisteredRoaming, Area: "00FF", Cell: "0000ABCD", AcT: 0}
	if d := cmp.Diff(want, reg.CS); d != "" {
		t.Errorf("CS registration (-want +got):\n%s", d)
	}
	if got := u.next(t); got != `+CREG: 5,"00FF","0000ABCD",0` {
		t.Errorf("URC = %q", got)
	}
	// A change while idle arrives as a URC too.
	sim.SetRegistration("CREG", 3, "", "", 0)
	if got, want := u.next(t), `+CREG: 3,"","",0`; got != want {
		t.Errorf("URC = %q, want %q", got, want)
	}
	reg, err = m.Registration(ctx(t))
	if err != nil {
		t.Fatalf("Registration = %v", err)
	}
	sim.SetRegistration("CEREG", 2, "", "", 7)
	reg, err = m.Registration(ctx(t))
	if err != nil {
		t.Fatalf("Registration = %v", err)
	}
	if reg.Registered() {
		t.Errorf("Registered() = true for %+v %+v", reg.CS, reg.EPS)
	}
	if err := m.Linked(ctx(t)); !errors.Is(err, modem.ErrNotLinked) {
		t.Errorf("Linked = %v, want ErrNotLinked", err)
	}
}

func TestLineNoise(t *testing.T) {
	u := newURCs()
	m, sim := open(t, modem.Config{OnURC: u.handle})
	noise := []byte{0x00, 0xff, 0xfe, 0x80, 0x1b, 0x07}
	sim.SendNoise(noise)
	sim.Once("AT+CSQ").Noise(noise)
	sim.Once("ATI").Noise(noise)
	sim.SetSignal(5, 3)
	s, err := m.Signal(ctx(t))
	if err != nil || s != (modem.Signal{RSSI: 5, BER: 3}) {
		t.Errorf("Signal = %+v, %v", s, err)
	}
	id, err := m.Identity(ctx(t))
	if err != nil || id.Model != modemtest.DefaultModel || id.Manufacturer != modemtest.DefaultManufacturer {
		t.Errorf("Identity = %+v, %v", id, err)
	}
	if got, min := m.Noise(), 3*len(noise); got < min {
		t.Errorf("Noise() = %d, want at least %d", got, min)
	}
	select {
	case l := <-u.c:
		t.Errorf("noise delivered as URC %q", l)
	default:
	}
}

func TestSlowAnswerWithinTimeout(t *testing.T) {
	t.Parallel()
	m, sim := open(t, modem.Config{Timeout: 3 * time.Second})
	sim.Once("AT+CGMR").Delay(300 * time.Millisecond)
	v, err := m.FirmwareVersion(ctx(t))
	if err != nil || v != modemtest.DefaultRevision {
		t.Errorf("FirmwareVersion = %q, %v", v, err)
	}
	// A command that takes longer than the default gets its own timeout.
	m2, sim2 := open(t, modem.Config{Timeout: 300 * time.Millisecond})
	sim2.Once("AT+CGMM").Delay(800 * time.Millisecond)
	got, err := m2.CommandTimeout(ctx(t), "AT+CGMM", 5*time.Second)
	if err != nil || len(got) != 1 || got[0] != modemtest.DefaultModel {
		t.Errorf("CommandTimeout(AT+CGMM) = %q, %v", got, err)
	}
}

func TestTimeoutThenResync(t *testing.T) {
	t.Parallel()
	u := newURCs()
	m, sim := open(t, modem.Config{Timeout: 500 * time.Millisecond, OnURC: u.handle})
	// The module answers AT+CSQ late, after the driver gave up. Its late
	// answer must not be taken for the next command's.
	sim.Once("AT+CSQ").Delay(1500*time.Millisecond).Reply("+CSQ: 1,1", "OK")
	_, err := m.Signal(ctx(t))
	if !errors.Is(err, modem.ErrTimeout) {
		t.Fatalf("Signal = %v, want ErrTimeout", err)
	}
	sim.SetSignal(30, 0)
	s, err := m.Signal(ctx(t))
	if err != nil || s != (modem.Signal{RSSI: 30, BER: 0}) {
		t.Errorf("Signal after timeout = %+v, %v; want {30 0}", s, err)
	}
	sim.SendURC("+CEREG: 1")
	if got := u.next(t); got != "+CEREG: 1" {
		t.Errorf("URC = %q, want +CEREG: 1 (the late +CSQ: line is no URC)", got)
	}
}

func TestLostCommandThenResync(t *testing.T) {
	t.Parallel()
	m, sim := open(t, modem.Config{Timeout: 500 * time.Millisecond})
	sim.Once("AT+CGMR").Silent()
	if _, err := m.FirmwareVersion(ctx(t)); !errors.Is(err, modem.ErrTimeout) {
		t.Fatalf("FirmwareVersion = %v, want ErrTimeout", err)
	}
	if v, err := m.FirmwareVersion(ctx(t)); err != nil || v != modemtest.DefaultRevision {
		t.Errorf("FirmwareVersion after lost command = %q, %v", v, err)
	}
}

func TestErrors(t *testing.T) {
	m, sim := open(t, modem.Config{})
	sim.Once("AT+CSQ").CME(10)
	_, err := m.Signal(ctx(t))
	var cme *modem.CMEError
	if !errors.As(err, &cme) || cme.Code != 10 || !errors.Is(err, modem.ErrCommandFailed) {
		t.Errorf("Signal = %v, want +CME ERROR: 10", err)
	}
	if _, err := m.Command(ctx(t), "AT+CMEE=2"); err != nil {
		t.Fatal(err)
	}
	sim.Once("AT+CSQ").CME(10)
	_, err = m.Signal(ctx(t))
	if !errors.As(err, &cme) || cme.Code != -1 || cme.Text != "SIM not inserted" {
		t.Errorf("Signal = %v, want verbose +CME ERROR", err)
	}
	if _, err := m.Command(ctx(t), "AT+CMEE=0"); err != nil {
		t.Fatal(err)
	}
	sim.Once("AT+CSQ").CME(10)
	_, err = m.Signal(ctx(t))
	if !errors.Is(err, modem.ErrCommandFailed) || errors.As(err, &cme) {
		t.Errorf("Signal = %v, want plain ERROR", err)
	}
	// The module lacks CEREG: registration still answers from CREG.
	sim.Once("AT+CEREG?").Reply("ERROR")
	reg, err := m.Registration(ctx(t))
	if err != nil || reg.EPS != nil || reg.CS == nil {
		t.Errorf("Registration = %+v, %v; want CS only", reg, err)
	}
	for _, bad := range []string{"", "X", "ATI\rATZ", "AT\x00", "AT+CSQ\n"} {
		if _, err := m.Command(ctx(t), bad); !errors.Is(err, modem.ErrBadCommand) {
			t.Errorf("Command(%q) = %v, want ErrBadCommand", bad, err)
		}
	}
	// Garbage where +CSQ: should be.
	sim.Once("AT+CSQ").Reply("+CSQ: 77,1", "OK")
	if _, err := m.Signal(ctx(t)); !errors.Is(err, modem.ErrSyntax) {
		t.Errorf("Signal = %v, want ErrSyntax", err)
	}
}

func TestContextCanceled(t *testing.T) {
	t.Parallel()
	m, sim := open(t, modem.Config{Timeout: 5 * time.Second})
	sim.Once("AT+CSQ").Delay(400 * time.Millisecond)
	c, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(100*time.Millisecond, cancel)
	defer stop.Stop()
	if _, err := m.Signal(c); !errors.Is(err, context.Canceled) {
		t.Errorf("Signal = %v, want context.Canceled", err)
	}
	if s, err := m.Signal(ctx(t)); err != nil || !s.Known() {
		t.Errorf("Signal after cancel = %+v, %v", s, err)
	}
}

func TestControlLinesMissingOnPty(t *testing.T) {
	m, _ := open(t, modem.Config{})
	if _, err := m.Lines(); !errors.Is(err, modem.ErrNoControlLines) {
		t.Errorf("Lines() = %v, want ErrNoControlLines", err)
	}
}

func TestPlaybackScript(t *testing.T) {
	m, sim := open(t, modem.Config{})
	sim.Expect("AT+COPS?").Reply(`+COPS: 0,0,"Vodafone.de",7`, "OK")
	sim.Expect("AT+CSQ")
	got, err := m.Command(ctx(t), "AT+COPS?")
	if err != nil || len(got) != 1 || got[0] != `+COPS: 0,0,"Vodafone.de",7` {
		t.Errorf("AT+COPS? = %q, %v", got, err)
	}
	if _, err := m.Signal(ctx(t)); err != nil {
		t.Errorf("Signal = %v", err)
	}
}

func TestCloseStopsReader(t *testing.T) {
	path, _ := modemtest.Start(t)
	m, err := modem.Open(ctx(t), path, modem.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := m.Signal(ctx(t)); !errors.Is(err, modem.ErrClosed) {
		t.Errorf("Signal after Close = %v, want ErrClosed", err)
	}
	// The port is free again: a second driver opens it.
	m2, err := modem.Open(ctx(t), path, modem.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	m2.Close()
}
