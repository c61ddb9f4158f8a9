package watchdog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeDriver keeps the rules of a Linux watchdog driver with a 1..max
// second range: SETTIMEOUT out of range is EINVAL, a value is clamped to
// what the hardware's counter holds (here: even seconds, rounded up), and
// every call counts.
type fakeDriver struct {
	timeout, max int
	feeds        int
	fail         error
}

func (d *fakeDriver) keepalive(uintptr) error {
	if d.fail != nil {
		return d.fail
	}
	d.feeds++
	return nil
}

func (d *fakeDriver) setTimeout(_ uintptr, secs int) error {
	if secs < 1 || secs > d.max {
		return errors.New("invalid argument")
	}
	d.timeout = (secs + 1) / 2 * 2
	return nil
}

func (d *fakeDriver) getTimeout(uintptr) (int, error) { return d.timeout, nil }

func TestDevice(t *testing.T) {
	tests := []struct {
		name    string
		set     time.Duration
		want    time.Duration
		wantErr bool
	}{
		{"whole seconds", 30 * time.Second, 30 * time.Second, false},
		{"rounded up, then to the counter", 2500 * time.Millisecond, 4 * time.Second, false},
		{"the driver's limit", 200 * time.Second, 0, true},
		{"zero", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "watchdog")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			drv := &fakeDriver{timeout: 60, max: 128}
			d, err := open(path, 0, drv)
			if err != nil {
				t.Fatal(err)
			}
			err = d.SetTimeout(tt.set)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SetTimeout(%v) = %v, want error %v", tt.set, err, tt.wantErr)
			}
			if err == nil {
				got, err := d.Timeout()
				if err != nil || got != tt.want {
					t.Errorf("Timeout() = %v, %v, want %v", got, err, tt.want)
				}
			}
			if err := d.Feed(); err != nil || drv.feeds != 1 {
				t.Errorf("Feed() = %v, feeds %d, want 1", err, drv.feeds)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != "V" {
				t.Errorf("device got %q at close, want the magic close %q", got, "V")
			}
			if err := d.Feed(); !errors.Is(err, ErrClosed) {
				t.Errorf("Feed after Close = %v, want ErrClosed", err)
			}
			if err := d.Close(); !errors.Is(err, ErrClosed) {
				t.Errorf("second Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestFeedErrorIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	drv := &fakeDriver{timeout: 60, max: 128, fail: errors.New("no such device")}
	d, err := open(path, 0, drv)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Feed(); err == nil || err.Error() != "watchdog: keepalive: no such device" {
		t.Errorf("Feed() = %v, want the driver's error wrapped", err)
	}
}

func TestOpenSetsTimeoutOrCloses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := open(path, time.Hour, &fakeDriver{max: 128}); err == nil {
		t.Fatal("open with a timeout the driver refuses succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "V" {
		t.Errorf("a refused open left the watchdog running (device got %q, want the magic close)", got)
	}
	if _, err := open(filepath.Join(t.TempDir(), "missing"), 0, &fakeDriver{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open(missing) = %v, want ErrNotExist", err)
	}
}
