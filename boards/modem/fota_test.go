package modem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"meterupd/boards/hw"
	"meterupd/boards/modem"
	"meterupd/boards/modem/modemtest"
)

// fastClock runs scale times faster than the wall clock, so that the
// dialects' minute-long waits pass in seconds.
type fastClock struct {
	start time.Time
	scale time.Duration
}

func newFastClock() fastClock { return fastClock{start: time.Now(), scale: 10} }

func (c fastClock) Now() time.Time {
	return c.start.Add(time.Since(c.start) * c.scale)
}

func (c fastClock) After(d time.Duration) <-chan time.Time { return time.After(d / c.scale) }

func fwConfig() modem.FirmwareConfig {
	return modem.FirmwareConfig{Clock: newFastClock(), InstallTimeout: 60 * time.Second}
}

// atConfig gives an answer 2 s: the simulator answers at once, but a test
// machine under load can hold a process for longer than half a second.
func atConfig() modem.Config { return modem.Config{Timeout: 2 * time.Second} }

// silentAT shortens the answer timeout for a test whose module stays
// silent on purpose: every probe then waits the whole timeout.
func silentAT(m hw.ModemFirmware) hw.ModemFirmware {
	switch m := m.(type) {
	case *modem.Quectel:
		m.Config.Timeout = 500 * time.Millisecond
	case *modem.UBlox:
		m.Config.Timeout = 500 * time.Millisecond
	}
	return m
}

// fwImage is a module firmware file the simulator installs as version.
func fwImage(version string, n int) []byte {
	b := []byte("MODEMFW " + version + "\n")
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for len(b) < n {
		b = append(b, byte(r.UintN(256)))
	}
	return b
}

type dialect struct {
	name  string
	sim   modemtest.Dialect
	from  string
	new   func(path string, fw modem.FirmwareConfig) hw.ModemFirmware
	cuts  []string // the module's own stages a power cut can hit
	final []string // commands that must have been sent, in order
}

var dialects = []dialect{
	{
		name: "quectel", sim: modemtest.Quectel, from: modemtest.DefaultRevision,
		new: func(path string, fw modem.FirmwareConfig) hw.ModemFirmware {
			return &modem.Quectel{Path: path, Config: atConfig(), FOTA: modem.QuectelConfig{FirmwareConfig: fw}}
		},
		cuts:  []string{"updating", "restore"},
		final: []string{`AT+QFLST="UFS:update.zip"`, `AT+QFUPL="UFS:update.zip",5001,5,1`, `AT+QFOTADL="/usrdata/UFS/update.zip"`, "AT+QGMR"},
	},
	{
		name: "ublox", sim: modemtest.UBlox, from: modemtest.UBloxRevision,
		new: func(path string, fw modem.FirmwareConfig) hw.ModemFirmware {
			fw.APN = "meter.apn"
			fw.Provision = []string{"AT+UMNOPROF=100", "AT+URAT=7,8"}
			return &modem.UBlox{Path: path, Config: atConfig(), FOAT: modem.UBloxConfig{FirmwareConfig: fw}}
		},
		cuts:  []string{"install"},
		final: []string{`AT+UDELFILE="update.bin","FOAT"`, `AT+UDWNFILE="update.bin",5001,"FOAT"`, "AT+UFWINSTALL", `AT+CGDCONT=1,"IP","meter.apn"`, "AT+UMNOPROF=100", "AT+URAT=7,8", "AT+CGMR"},
	},
}

// journal is what the agent journals: the last persisted step.
type journal struct {
	mu     sync.Mutex
	last   hw.ModemStep
	phases []hw.ModemPhase
	cutAt  int // cut the power after the n-th record (1-based); 0: never
	sim    *modemtest.Modem
}

var errPowerCut = errors.New("power cut")

func (j *journal) persist(st hw.ModemStep) error {
	j.mu.Lock()
	j.last = st
	j.phases = append(j.phases, st.Phase)
	n := len(j.phases)
	j.mu.Unlock()
	if n == j.cutAt {
		j.sim.PowerCut()
		return errPowerCut
	}
	return nil
}

func run(ctx context.Context, fw hw.ModemFirmware, st hw.ModemStep, img []byte, j *journal) (string, error) {
	return modem.UpdateFirmware(ctx, fw, st, func() (io.Reader, error) { return bytes.NewReader(img), nil }, j.persist)
}

// TestUpdateFirmware runs each dialect end to end, on a port that vanishes
// while the module restarts (USB) and on one that stays (UART: the
// Quectel driver then sees RDY on the dialogue that started the update).
func TestUpdateFirmware(t *testing.T) {
	for _, d := range dialects {
		for _, uart := range []bool{false, true} {
			name := d.name + "/usb"
			if uart {
				name = d.name + "/uart"
			}
			t.Run(name, func(t *testing.T) { testUpdateFirmware(t, d, uart) })
		}
	}
}

func testUpdateFirmware(t *testing.T, d dialect, uart bool) {
	path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: d.sim, UART: uart})
	sim.PutFile("UFS:update.zip", []byte("stale")) // Quectel: an old upload to remove
	want := "NEW-" + d.name
	img := fwImage(want, 5001) // odd: the checksum's last half word
	j := &journal{sim: sim}
	var progress []string
	fw := fwConfig()
	fw.Progress = func(stage string, pct int) { progress = append(progress, fmt.Sprint(stage, pct)) }
	got, err := run(context.Background(), d.new(path, fw), hw.ModemStep{Want: want, Size: int64(len(img))}, img, j)
	if err != nil {
		t.Fatalf("UpdateFirmware = %v", err)
	}
	if got != want || sim.Revision() != want {
		t.Errorf("UpdateFirmware = %q, module runs %q; want %q", got, sim.Revision(), want)
	}
	wantPhases := []hw.ModemPhase{hw.ModemUploading, hw.ModemUploaded, hw.ModemStarted, hw.ModemConfirming, hw.ModemDone}
	if !slices.Equal(j.phases, wantPhases) {
		t.Errorf("journalled phases = %v, want %v", j.phases, wantPhases)
	}
	if j.last.From != d.from || j.last.Starts != 1 {
		t.Errorf("last record = %+v, want From %q, Starts 1", j.last, d.from)
	}
	cmds := sim.Commands()
	i := 0
	for _, c := range cmds {
		if i < len(d.final) && c == d.final[i] {
			i++
		}
	}
	if i < len(d.final) {
		t.Errorf("commands %q lack %q (in order)", cmds, d.final[i:])
	}
	if d.sim == modemtest.Quectel && !slices.Contains(cmds, `AT+QFDEL="UFS:update.zip"`) {
		t.Errorf("the stale upload was not removed: %q", cmds)
	}
	if d.sim == modemtest.UBlox {
		apn, prov := sim.Provisioned()
		if apn != "meter.apn" || !slices.Equal(prov, []string{"AT+UMNOPROF=100", "AT+URAT=7,8"}) {
			t.Errorf("after the install the module has APN %q and %q, want it provisioned again", apn, prov)
		}
	}
	if !slices.Contains(progress, "upload100") {
		t.Errorf("progress %v lacks upload100", progress)
	}
}

func TestQuectelChecksumMismatch(t *testing.T) {
	path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.Quectel})
	sim.CorruptNextUpload()
	q := &modem.Quectel{Path: path, Config: atConfig(), FOTA: modem.QuectelConfig{FirmwareConfig: fwConfig()}}
	img := fwImage("X", 3000)
	err := q.ModemUpload(context.Background(), bytes.NewReader(img), int64(len(img)))
	if !errors.Is(err, modem.ErrChecksum) {
		t.Fatalf("ModemUpload of a corrupted transfer = %v, want ErrChecksum", err)
	}
	if _, ok := sim.File(modemtest.QuectelFile); ok {
		t.Errorf("the corrupted file is still in the module")
	}
	// The next upload goes through.
	if err := q.ModemUpload(context.Background(), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("ModemUpload again = %v", err)
	}
	if b, _ := sim.File(modemtest.QuectelFile); !bytes.Equal(b, img) {
		t.Errorf("the module holds %d bytes, not the image", len(b))
	}
}

func TestQuectelENDError(t *testing.T) {
	path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.Quectel})
	sim.FOTAError(505)
	img := fwImage("NEW", 2048)
	j := &journal{sim: sim}
	q := &modem.Quectel{Path: path, Config: atConfig(), FOTA: modem.QuectelConfig{FirmwareConfig: fwConfig()}}
	got, err := run(context.Background(), q, hw.ModemStep{Want: "NEW", Size: int64(len(img))}, img, j)
	var fe *modem.FOTAError
	if !errors.As(err, &fe) || fe.Code != 505 || !errors.Is(err, modem.ErrRefused) {
		t.Fatalf("UpdateFirmware = %q, %v; want FOTAError 505", got, err)
	}
	if sim.Revision() != modemtest.DefaultRevision {
		t.Errorf("module runs %q after END 505, want the old %q", sim.Revision(), modemtest.DefaultRevision)
	}
}

func TestNeverReady(t *testing.T) {
	for _, d := range dialects {
		for _, uart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/uart=%v", d.name, uart), func(t *testing.T) {
				path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: d.sim, UART: uart})
				sim.NeverReady()
				img := fwImage("NEW", 1500)
				fw := fwConfig()
				fw.InstallTimeout = 10 * time.Second // 1 s on the fast clock
				got, err := run(context.Background(), silentAT(d.new(path, fw)), hw.ModemStep{Want: "NEW", Size: int64(len(img))}, img, &journal{sim: sim})
				if !errors.Is(err, modem.ErrNotReady) || got != "" {
					t.Fatalf("UpdateFirmware = %q, %v; want ErrNotReady", got, err)
				}
			})
		}
	}
}

func TestUBloxRefuses(t *testing.T) {
	path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.UBlox})
	img := bytes.Repeat([]byte("not a firmware package "), 100)
	u := &modem.UBlox{Path: path, Config: atConfig(), FOAT: modem.UBloxConfig{FirmwareConfig: fwConfig()}}
	j := &journal{sim: sim}
	got, err := run(context.Background(), u, hw.ModemStep{Want: "NEW", Size: int64(len(img))}, img, j)
	if !errors.Is(err, modem.ErrRefused) || got != "" {
		t.Fatalf("UpdateFirmware of a file the module rejects = %q, %v; want ErrRefused", got, err)
	}
	if j.last.Starts != modem.MaxStarts || sim.Restarts() != modem.MaxStarts {
		t.Errorf("installs tried %d (module restarted %d times), want %d", j.last.Starts, sim.Restarts(), modem.MaxStarts)
	}
}

// TestPowerCut cuts the power (module and host) at every journalled step
// and at every stage of the module's own work, then restarts the driver
// from the last record: the update finishes, and no run reports a version
// the module does not run.
func TestPowerCut(t *testing.T) {
	for _, d := range dialects {
		type cut struct {
			name   string
			record int    // after the n-th journal record
			upload int64  // after n bytes of the upload
			stage  string // at a stage of the module's work
			uart   bool   // the port stays while the module restarts
		}
		var cuts []cut
		for n := 1; n <= 5; n++ {
			cuts = append(cuts, cut{name: fmt.Sprintf("record%d", n), record: n})
		}
		cuts = append(cuts, cut{name: "upload2500", upload: 2500})
		for _, s := range d.cuts {
			cuts = append(cuts, cut{name: s, stage: s}, cut{name: s + "/uart", stage: s, uart: true})
		}
		for _, c := range cuts {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: d.sim, UART: c.uart})
				want := "NEW-" + d.name
				img := fwImage(want, 5001)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				sim.OnPowerCut(cancel)
				j := &journal{sim: sim, cutAt: c.record}
				if c.upload > 0 {
					sim.CutUploadAt(c.upload)
				}
				if c.stage != "" {
					sim.CutAt(c.stage)
				}
				got, err := run(ctx, d.new(path, fwConfig()), hw.ModemStep{Want: want, Size: int64(len(img))}, img, j)
				if err == nil {
					t.Fatalf("first run = %q, no error: the cut did not happen", got)
				}
				if got != "" {
					t.Errorf("first run reported %q with %v", got, err)
				}
				// Power is back: a new process resumes from the journal.
				sim.OnPowerCut(nil)
				j.mu.Lock()
				st := j.last
				j.cutAt = 0
				j.mu.Unlock()
				if st.Phase == hw.ModemNew {
					st = hw.ModemStep{Want: want, Size: int64(len(img))}
				}
				got, err = run(context.Background(), d.new(path, fwConfig()), st, img, j)
				if err != nil {
					t.Fatalf("resumed from %+v: %v", st, err)
				}
				if got != want || sim.Revision() != want {
					t.Errorf("resumed run = %q, module runs %q; want %q", got, sim.Revision(), want)
				}
				if j.last.Phase != hw.ModemDone {
					t.Errorf("last record %+v, want phase done", j.last)
				}
				t.Logf("%s: resumed from %q, records %v", c.name, st.Phase, j.phases)
			})
		}
	}
}

func TestChecksum16(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want uint16
	}{
		{nil, 0},
		{[]byte{0x12}, 0x1200},
		{[]byte{0x12, 0x34}, 0x1234},
		{[]byte{0x12, 0x34, 0x56, 0x78}, 0x1234 ^ 0x5678},
		{[]byte{0x12, 0x34, 0x56}, 0x1234 ^ 0x5600},
	} {
		var c modem.Checksum16
		c.Write(tc.in)
		if got := c.Sum(); got != tc.want {
			t.Errorf("Checksum16(% x) = %04x, want %04x", tc.in, got, tc.want)
		}
		// Written in pieces of every split, the sum is the same.
		for i := range tc.in {
			var s modem.Checksum16
			s.Write(tc.in[:i])
			s.Write(tc.in[i:])
			if got := s.Sum(); got != tc.want {
				t.Errorf("Checksum16(% x | % x) = %04x, want %04x", tc.in[:i], tc.in[i:], got, tc.want)
			}
		}
	}
}

func TestParseQIND(t *testing.T) {
	for _, tc := range []struct {
		line string
		want modem.QIND
		err  bool
	}{
		{`+QIND: "FOTA","START"`, modem.QIND{Kind: "FOTA", Stage: "START", Value: -1}, false},
		{`+QIND: "FOTA","UPDATING",45`, modem.QIND{Kind: "FOTA", Stage: "UPDATING", Value: 45}, false},
		{`+QIND: "FOTA","RESTORE",2%`, modem.QIND{Kind: "FOTA", Stage: "RESTORE", Value: 2}, false},
		{`+QIND: "FOTA","END",0`, modem.QIND{Kind: "FOTA", Stage: "END", Value: 0}, false},
		{`+QIND: "FOTA","END",505`, modem.QIND{Kind: "FOTA", Stage: "END", Value: 505}, false},
		{`+QIND: "FOTA","Last upgrade was not finished,continue upgrade"`, modem.QIND{Kind: "FOTA", Stage: "Last upgrade was not finished,continue upgrade", Value: -1}, false},
		{`+QIND: "csq",21,99`, modem.QIND{}, true},
		{`+QIND: "FOTA","END",-1`, modem.QIND{}, true},
		{`+QIND: FOTA`, modem.QIND{}, true},
		{`+QFUPL: 1,2`, modem.QIND{}, true},
	} {
		got, err := modem.ParseQIND(tc.line)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseQIND(%q) = %+v, %v; want %+v, error %v", tc.line, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, modem.ErrSyntax) {
			t.Errorf("ParseQIND(%q) error %v is not ErrSyntax", tc.line, err)
		}
	}
}

func TestParseQFUPL(t *testing.T) {
	for _, tc := range []struct {
		line string
		size int64
		sum  uint16
		err  bool
	}{
		{"+QFUPL: 1187,2d19", 1187, 0x2d19, false},
		{"+QFUPL: 0,0", 0, 0, false},
		{"+QFUPL: 10,ffff", 10, 0xffff, false},
		{"+QFUPL: 10,10000", 0, 0, true},
		{"+QFUPL: -1,0", 0, 0, true},
		{`+QFUPL: "a",0`, 0, 0, true},
		{"+QFUPL: 10", 0, 0, true},
		{"+QFUPL: 99999999999,1", 0, 0, true},
	} {
		size, sum, err := modem.ParseQFUPL(tc.line)
		if (err != nil) != tc.err || size != tc.size || sum != tc.sum {
			t.Errorf("ParseQFUPL(%q) = %d, %x, %v; want %d, %x, error %v", tc.line, size, sum, err, tc.size, tc.sum, tc.err)
		}
	}
	if s := modem.FormatQFUPL(1187, 0x2d19); !strings.EqualFold(s, "+QFUPL: 1187,2d19") {
		t.Errorf("FormatQFUPL = %q", s)
	}
}

// TestUploadPortGone: the module loses power in the middle of an upload
// while the host keeps running; the driver says the port is gone.
func TestUploadPortGone(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: d.sim})
			sim.CutUploadAt(3000)
			img := fwImage("X", 5001)
			err := d.new(path, fwConfig()).ModemUpload(context.Background(), bytes.NewReader(img), int64(len(img)))
			if !errors.Is(err, modem.ErrPortGone) {
				t.Fatalf("ModemUpload cut at 3000 bytes = %v, want ErrPortGone", err)
			}
			if sim.Revision() != d.from {
				t.Errorf("module runs %q, want %q", sim.Revision(), d.from)
			}
		})
	}
}

// TestNeverReportsUnconfirmed: a record that says the update is done (or
// being confirmed) is not taken for the truth when the module runs
// another version.
func TestNeverReportsUnconfirmed(t *testing.T) {
	for _, d := range dialects {
		for _, phase := range []hw.ModemPhase{hw.ModemConfirming, hw.ModemDone} {
			t.Run(fmt.Sprintf("%s/%s", d.name, phase), func(t *testing.T) {
				path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: d.sim})
				st := hw.ModemStep{Phase: phase, Want: "NEW", From: d.from, Size: 10, Starts: 1}
				got, err := run(context.Background(), d.new(path, fwConfig()), st, nil, &journal{sim: sim})
				if !errors.Is(err, modem.ErrUnexpectedVersion) || got != "" {
					t.Errorf("UpdateFirmware from %s with the module at %q = %q, %v; want ErrUnexpectedVersion", phase, sim.Revision(), got, err)
				}
			})
		}
	}
}

func TestUpdateFirmwareBadStep(t *testing.T) {
	for _, st := range []hw.ModemStep{{Size: 10}, {Want: "x"}, {Want: "x", Size: 10, Phase: "bogus"}} {
		_, err := modem.UpdateFirmware(context.Background(), nil, st, nil, nil)
		if !errors.Is(err, modem.ErrBadStep) {
			t.Errorf("UpdateFirmware(%+v) = %v, want ErrBadStep", st, err)
		}
	}
}

// TestUploadShortImage: the update file ends before its declared size.
// The upload fails, the driver lets the module's data timeout pass, and
// the next upload goes through.
func TestUploadShortImage(t *testing.T) {
	path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.Quectel})
	fw := fwConfig()
	q := &modem.Quectel{Path: path, Config: atConfig(), FOTA: modem.QuectelConfig{FirmwareConfig: fw, DataTimeout: 20}}
	img := fwImage("X", 5001)
	err := q.ModemUpload(context.Background(), bytes.NewReader(img[:3000]), int64(len(img)))
	if err == nil || errors.Is(err, modem.ErrPortGone) {
		t.Fatalf("ModemUpload of a short file = %v, want an error", err)
	}
	if err := q.ModemUpload(context.Background(), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("ModemUpload after it = %v", err)
	}
	if b, _ := sim.File(modemtest.QuectelFile); !bytes.Equal(b, img) {
		t.Errorf("the module holds %d bytes, not the image", len(b))
	}
}

// The module restarts into its update before the OK of AT+QFOTADL reaches
// the driver (the answer is lost and the USB port vanishes): the update
// goes on; ModemWait and the version decide.
func TestQuectelStartOKLost(t *testing.T) {
	path, sim := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.Quectel})
	sim.Once("AT+QFOTADL*").Lost()
	img := fwImage("NEW", 2048)
	fw := fwConfig()
	q := &modem.Quectel{Path: path, Config: modem.Config{Timeout: 5 * time.Second}, FOTA: modem.QuectelConfig{FirmwareConfig: fw}}
	got, err := run(context.Background(), q, hw.ModemStep{Want: "NEW", Size: int64(len(img))}, img, &journal{sim: sim})
	if err != nil || got != "NEW" {
		t.Fatalf("UpdateFirmware = %q, %v; want NEW", got, err)
	}
}
