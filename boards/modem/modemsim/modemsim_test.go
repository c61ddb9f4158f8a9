package modemsim_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"meterupd/boards/modem"
	"meterupd/boards/modem/modemsim"
)

// TestStartAsProgram: without a testing.TB, as `meterupd sim modem
// --simulate` runs it: the module starts at the revision asked for,
// reports what it does not know through Report, and its port's link goes
// with Close.
func TestStartAsProgram(t *testing.T) {
	if _, err := modemsim.Start(modemsim.Options{Dialect: modemsim.Quectel}); err == nil {
		t.Fatal("a dialect module without Dir started")
	}
	var mu sync.Mutex
	var reports []string
	m, err := modemsim.Start(modemsim.Options{Dialect: modemsim.Quectel, Dir: t.TempDir(), Revision: "BG95M3LAR02A09",
		Report: func(f string, a ...any) { mu.Lock(); reports = append(reports, fmt.Sprintf(f, a...)); mu.Unlock() }})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no Linux pseudo-terminals")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := &modem.Quectel{Path: m.Path()}
	if v, err := q.ModemVersion(ctx); err != nil || v != "BG95M3LAR02A09" {
		t.Fatalf("ModemVersion = %q, %v", v, err)
	}
	c, err := modem.Open(ctx, m.Path(), modem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command(ctx, "AT+COPS?"); !errors.Is(err, modem.ErrCommandFailed) {
		t.Errorf("AT+COPS? = %v, want ERROR", err)
	}
	c.Close()
	m.Close()
	m.Close() // twice is harmless
	if _, err := os.Lstat(m.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("port link after Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 {
		t.Errorf("reports = %q, want one about AT+COPS?", reports)
	}
}

// Save and Load carry a module's revision and files to a later moment.
func TestSaveLoad(t *testing.T) {
	m, err := modemsim.Start(modemsim.Options{Dialect: modemsim.Quectel, Dir: t.TempDir()})
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err) // TestStartAsProgram tells CI apart
	}
	defer m.Close()
	m.PutFile(modemsim.QuectelFile, []byte("part"))
	st, idle := m.Save(time.Second)
	if !idle || st.Revision != modemsim.DefaultRevision || string(st.Files[modemsim.QuectelFile]) != "part" {
		t.Fatalf("Save = %+v, %v", st, idle)
	}
	m.SetIdentity("Quectel", "BG95-M3", "OTHER", modemsim.DefaultIMEI)
	m.PutFile("UFS:other", []byte("x"))
	m.Load(st)
	if got := m.Revision(); got != modemsim.DefaultRevision {
		t.Errorf("Revision after Load = %q", got)
	}
	if _, ok := m.File("UFS:other"); ok {
		t.Error("a file stored after Save survives Load")
	}
	if b, _ := m.File(modemsim.QuectelFile); string(b) != "part" {
		t.Errorf("file after Load = %q", b)
	}
}

// Close returns whenever it comes, also while the module's port is away
// after a power cut (it once could leave the module waiting on the port
// it opened next, for ever).
func TestCloseWhilePortAway(t *testing.T) {
	for i := range 40 {
		m, err := modemsim.Start(modemsim.Options{Dialect: modemsim.Quectel, Dir: t.TempDir()})
		if err != nil {
			t.Skipf("no pseudo-terminal: %v", err) // TestStartAsProgram tells CI apart
		}
		m.PowerCut()
		time.Sleep(time.Duration(i*2) * time.Millisecond) // across the module's 50 ms off time
		done := make(chan struct{})
		go func() { m.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Close %d ms after a power cut does not return", i*2)
		}
	}
}
