package modem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"meterupd/boards/modem"
	"meterupd/boards/modem/modemtest"
)

// image returns a firmware image of n bytes that the simulated module
// will report as version.
func image(version string, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "MODEMFW "+version+"\n")
	return b
}

// fwData lists the AT+FWDATA commands the module received.
func fwData(sim *modemtest.Modem) []string {
	var out []string
	for _, c := range sim.Commands() {
		if strings.HasPrefix(c, "AT+FWDATA=") {
			out = append(out, c)
		}
	}
	return out
}

func TestFirmwareUpdateOverAT(t *testing.T) {
	for _, echo := range []bool{false, true} {
		t.Run(map[bool]string{false: "echo-off", true: "echo-on"}[echo], func(t *testing.T) {
			testFirmwareUpdate(t, echo)
		})
	}
}

func testFirmwareUpdate(t *testing.T, echo bool) {
	m, sim := open(t, modem.Config{Echo: echo})
	img := image("BG95M3LAR02A04", 40<<10+123)
	var last int64
	u := modem.NewATUpdater(m, modem.UpdaterConfig{Progress: func(done, total int64) { last = done }})
	if err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	if last != int64(len(img)) {
		t.Errorf("last progress = %d, want %d", last, len(img))
	}
	if got := sim.Restarts(); got != 1 {
		t.Errorf("module restarted %d times, want 1", got)
	}
	v, err := u.Version(ctx(t))
	if err != nil || v != "BG95M3LAR02A04" {
		t.Errorf("Version = %q, %v; want BG95M3LAR02A04", v, err)
	}
	if got, want := len(fwData(sim)), (len(img)+1023)/1024; got != want {
		t.Errorf("%d chunks sent, want %d", got, want)
	}
	// The driver set the module up again after its restart (echo on,
	// numeric errors off at power-up).
	cmds := sim.Commands()
	if got := cmds[len(cmds)-2]; got != "AT+CMEE=1" {
		t.Errorf("command before AT+CGMR = %q, want AT+CMEE=1 (Init after restart)", got)
	}
}

func TestFirmwareUpdateResumes(t *testing.T) {
	t.Parallel()
	m, sim := open(t, modem.Config{})
	img := image("R2", 20<<10)
	c, cancel := context.WithCancel(ctx(t))
	u := modem.NewATUpdater(m, modem.UpdaterConfig{Progress: func(done, total int64) {
		if done >= 8<<10 {
			cancel() // the link breaks off
		}
	}})
	err := u.Update(c, bytes.NewReader(img), int64(len(img)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	size, staged := sim.Staged()
	if size != int64(len(img)) || staged < 8<<10 || staged == size {
		t.Fatalf("staged %d of %d bytes, want a partial transfer", staged, size)
	}
	sent := len(fwData(sim))

	u = modem.NewATUpdater(m, modem.UpdaterConfig{})
	if err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("resumed Update = %v", err)
	}
	chunks := fwData(sim)
	first := chunks[sent]
	if want := "AT+FWDATA=" + strconv.FormatInt(staged, 10) + ","; !strings.HasPrefix(first, want) {
		t.Errorf("first chunk after resume = %q, want offset %d", first, staged)
	}
	if got, want := len(chunks)-sent, int(size-staged+1023)/1024; got != want {
		t.Errorf("resumed transfer sent %d chunks, want %d", got, want)
	}
	if got := sim.Revision(); got != "R2" {
		t.Errorf("module revision = %q, want R2", got)
	}
}

// onlyReader hides Seek: the updater cannot key a session, so it starts
// afresh.
type onlyReader struct{ io.Reader }

func TestFirmwareUpdateNotSeekableStartsAfresh(t *testing.T) {
	m, sim := open(t, modem.Config{})
	img := image("R3", 6<<10)
	c, cancel := context.WithCancel(ctx(t))
	u := modem.NewATUpdater(m, modem.UpdaterConfig{Progress: func(done, total int64) {
		if done >= 2<<10 {
			cancel()
		}
	}})
	if err := u.Update(c, onlyReader{bytes.NewReader(img)}, int64(len(img))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	sent := len(fwData(sim))
	u = modem.NewATUpdater(m, modem.UpdaterConfig{})
	if err := u.Update(ctx(t), onlyReader{bytes.NewReader(img)}, int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	if got := fwData(sim)[sent]; !strings.HasPrefix(got, "AT+FWDATA=0,") {
		t.Errorf("first chunk of second transfer = %q, want offset 0", got)
	}
	if got := sim.Revision(); got != "R3" {
		t.Errorf("module revision = %q, want R3", got)
	}
}

func TestFirmwareCorruptChunkIsResent(t *testing.T) {
	m, sim := open(t, modem.Config{})
	img := image("R4", 5<<10)
	sim.Once("AT+FWDATA=2048,*").Corrupt()
	u := modem.NewATUpdater(m, modem.UpdaterConfig{})
	if err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	n := 0
	for _, c := range fwData(sim) {
		if strings.HasPrefix(c, "AT+FWDATA=2048,") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("chunk at 2048 sent %d times, want 2", n)
	}
	if got := sim.Revision(); got != "R4" {
		t.Errorf("module revision = %q, want R4", got)
	}
}

func TestFirmwareLostAnswerSettledByQuery(t *testing.T) {
	t.Parallel()
	m, sim := open(t, modem.Config{Timeout: 500 * time.Millisecond})
	img := image("R5", 5<<10)
	sim.Once("AT+FWDATA=3072,*").Lost()
	u := modem.NewATUpdater(m, modem.UpdaterConfig{})
	if err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	if got, want := len(fwData(sim)), 5; got != want {
		t.Errorf("%d chunks sent, want %d (the lost answer's chunk was stored)", got, want)
	}
	if got := sim.Revision(); got != "R5" {
		t.Errorf("module revision = %q, want R5", got)
	}
}

func TestFirmwareModuleLimits(t *testing.T) {
	m, sim := open(t, modem.Config{})
	sim.SetFirmwareLimits(4000, 256)
	u := modem.NewATUpdater(m, modem.UpdaterConfig{})

	big := image("R6", 5000)
	err := u.Update(ctx(t), bytes.NewReader(big), int64(len(big)))
	var cme *modem.CMEError
	if !errors.As(err, &cme) || cme.Code != modem.CMETooLarge {
		t.Errorf("Update(5000 bytes) = %v, want CME %d", err, modem.CMETooLarge)
	}
	img := image("R7", 3000)
	if err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	for _, c := range fwData(sim) {
		var off, n int
		if _, err := fmt.Sscanf(c, "AT+FWDATA=%d,%d,", &off, &n); err != nil || n > 256 {
			t.Errorf("chunk %q: %v, longer than the module's 256", c, err)
		}
	}
	if got := sim.Revision(); got != "R7" {
		t.Errorf("module revision = %q, want R7", got)
	}
}

func TestFirmwareShortImageActivatesNothing(t *testing.T) {
	m, sim := open(t, modem.Config{})
	img := image("R8", 3000)
	u := modem.NewATUpdater(m, modem.UpdaterConfig{})
	err := u.Update(ctx(t), onlyReader{bytes.NewReader(img)}, 4000)
	if !errors.Is(err, modem.ErrShortImage) {
		t.Errorf("Update = %v, want ErrShortImage", err)
	}
	err = u.Update(ctx(t), bytes.NewReader(img), 4000)
	if !errors.Is(err, modem.ErrShortImage) {
		t.Errorf("Update(seekable) = %v, want ErrShortImage", err)
	}
	if err := u.Update(ctx(t), bytes.NewReader(img), 0); !errors.Is(err, modem.ErrBadCommand) {
		t.Errorf("Update(size 0) = %v, want ErrBadCommand", err)
	}
	if sim.Restarts() != 0 || sim.Revision() != modemtest.DefaultRevision {
		t.Errorf("module restarted %d times, revision %q: nothing should be activated", sim.Restarts(), sim.Revision())
	}
}

func TestFirmwareRejectedActivation(t *testing.T) {
	m, sim := open(t, modem.Config{})
	img := image("R9", 2000)
	sim.Once("AT+FWACT=*").CME(modem.CMEChecksum)
	u := modem.NewATUpdater(m, modem.UpdaterConfig{})
	err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img)))
	var cme *modem.CMEError
	if !errors.As(err, &cme) || cme.Code != modem.CMEChecksum {
		t.Errorf("Update = %v, want CME %d", err, modem.CMEChecksum)
	}
	if sim.Restarts() != 0 {
		t.Errorf("module restarted after a rejected activation")
	}
}

func TestRadioOpensPerCall(t *testing.T) {
	path, sim := modemtest.Start(t)
	r := modem.Radio{Path: path, Config: modem.Config{Logger: testLogger(t)}}
	if err := r.Linked(ctx(t)); err != nil {
		t.Errorf("Linked = %v", err)
	}
	st, err := r.Status(ctx(t))
	if err != nil || st.Identity.Model != modemtest.DefaultModel {
		t.Errorf("Status = %+v, %v", st, err)
	}
	img := image("R10", 3000)
	if err := r.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	if v, err := r.Version(ctx(t)); err != nil || v != "R10" {
		t.Errorf("Version = %q, %v; want R10", v, err)
	}
	// Each call opened the port afresh and ran Init.
	n := 0
	for _, c := range sim.Commands() {
		if c == "AT+CMEE=1" {
			n++
		}
	}
	if n != 5 { // four opens, and once more after the module's restart
		t.Errorf("AT+CMEE=1 sent %d times, want 5", n)
	}
	bad := modem.Radio{Path: path + "-missing"}
	if err := bad.Linked(ctx(t)); err == nil {
		t.Errorf("Linked on a missing port = nil, want an error")
	}
}

func TestFirmwareLatePromptRecovers(t *testing.T) {
	t.Parallel()
	// The module is slow to open the data phase of one chunk: the driver
	// gives up waiting for the prompt, and the module then sits in a data
	// phase nobody feeds. The driver must not lose its resync commands in
	// there, and the transfer must complete.
	m, sim := open(t, modem.Config{Timeout: 400 * time.Millisecond})
	img := image("R11", 4<<10)
	sim.Once("AT+FWDATA=1024,*").Delay(700 * time.Millisecond)
	u := modem.NewATUpdater(m, modem.UpdaterConfig{})
	if err := u.Update(ctx(t), bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("Update = %v", err)
	}
	n := 0
	for _, c := range fwData(sim) {
		if strings.HasPrefix(c, "AT+FWDATA=1024,") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("chunk at 1024 sent %d times, want 2", n)
	}
	if got := sim.Revision(); got != "R11" {
		t.Errorf("module revision = %q, want R11", got)
	}
}
