package sim

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"meterupd/boards/hw"
	"meterupd/clock/clocktest"
)

// An unfed watchdog resets the node after its timeout: the bootloader
// runs and spends one of the trial's attempts; a fed one does not.
func TestWatchdogResetsUnlessFed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	g := DefaultGeometry()
	g.SlotSize = 128 << 10
	if err := Create(dir, g); err != nil {
		t.Fatal(err)
	}
	img := Image(int(g.SlotSize), "1.0")
	if err := WriteFactory(dir, img); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Boot().Store(hw.BootState{Order: []hw.Slot{hw.SlotA}, Left: map[hw.Slot]int{hw.SlotA: 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PowerOn(); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
	w := NewWatchdog(b, clk)
	defer w.Close()
	if err := w.SetTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for range 5 { // fed every 9 s: 45 s without a reset
		clk.Advance(9 * time.Second)
		if err := w.Feed(); err != nil {
			t.Fatalf("Feed: %v", err)
		}
	}
	select {
	case err := <-w.Resets():
		t.Fatalf("a fed watchdog reset the node (%v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	left := func() int {
		bs, err := b.Boot().Load()
		if err != nil {
			t.Fatal(err)
		}
		return bs.Left[hw.SlotA]
	}
	before := left()
	clk.Advance(10 * time.Second)
	select {
	case err := <-w.Resets():
		if err != nil {
			t.Fatalf("bootloader after the reset: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an unfed watchdog did not reset the node")
	}
	if got, want := left(), before-1; got != want {
		t.Errorf("attempts left after the reset = %d, want %d (the bootloader ran)", got, want)
	}
	if err := w.Feed(); !errors.Is(err, ErrWatchdogReset) {
		t.Errorf("Feed after the reset = %v, want ErrWatchdogReset", err)
	}
}
