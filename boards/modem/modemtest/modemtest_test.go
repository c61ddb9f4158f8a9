package modemtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"meterupd/boards/modem"
	"meterupd/boards/modem/modemtest"
)

// recorder is a testing.TB that records the simulator's failures instead
// of failing the test.
type recorder struct {
	*testing.T
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func TestUnexpectedCommandFails(t *testing.T) {
	rec := &recorder{T: t}
	path, _ := modemtest.Start(rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, path, modem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Command(ctx, "AT+COPS?"); !errors.Is(err, modem.ErrCommandFailed) {
		t.Errorf("AT+COPS? = %v, want ERROR", err)
	}
	if f := rec.failures(); len(f) != 1 || !strings.Contains(f[0], `unexpected command "AT+COPS?"`) {
		t.Errorf("simulator failures = %q, want one about AT+COPS?", f)
	}
}

func TestPlaybackOutOfOrderFails(t *testing.T) {
	rec := &recorder{T: t}
	path, sim := modemtest.Start(rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, path, modem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sim.Expect("AT+CGMR")
	if _, err := m.Signal(ctx); !errors.Is(err, modem.ErrCommandFailed) {
		t.Errorf("Signal = %v, want ERROR", err)
	}
	if f := rec.failures(); len(f) != 1 || !strings.Contains(f[0], `want "AT+CGMR"`) {
		t.Errorf("simulator failures = %q", f)
	}
	if _, err := m.FirmwareVersion(ctx); err != nil {
		t.Errorf("FirmwareVersion = %v", err)
	}
}

func TestLeftoverExpectationFails(t *testing.T) {
	var rec *recorder
	t.Run("script", func(t *testing.T) {
		rec = &recorder{T: t}
		_, sim := modemtest.Start(rec)
		sim.Expect("AT+CSQ")
		sim.Once("ATI")
	})
	f := rec.failures()
	if len(f) != 2 || !strings.Contains(f[0], "AT+CSQ") || !strings.Contains(f[1], "ATI") {
		t.Errorf("failures at cleanup = %q, want the unmet AT+CSQ and ATI", f)
	}
}
