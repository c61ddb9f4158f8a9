package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"meterupd/boards/modem/modemtest"
)

// TestModemFirmwareCapability: the node's module is an update target only
// with a port and a dialect; a dialect it does not know changes nothing.
func TestModemFirmwareCapability(t *testing.T) {
	b := openNode(t, newNode(t, smallGeometry()))
	if fw := b.ModemFirmware(); fw != nil {
		t.Fatalf("no port: ModemFirmware = %T, want nil", fw)
	}
	path, m := modemtest.StartWith(t, modemtest.Options{Dialect: modemtest.Quectel})
	if err := b.SetModemPort(path); err != nil {
		t.Fatal(err)
	}
	if fw := b.ModemFirmware(); fw != nil {
		t.Fatalf("no dialect: ModemFirmware = %T, want nil", fw)
	}
	if err := b.SetModemDialect("quectel"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetModemDialect("nokia"); !errors.Is(err, ErrModemDialect) {
		t.Fatalf("SetModemDialect(nokia) = %v, want ErrModemDialect", err)
	}
	fw := b.ModemFirmware()
	if fw == nil {
		t.Fatal("port and dialect: no ModemFirmware")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := fw.ModemVersion(ctx); err != nil || v != m.Revision() {
		t.Errorf("ModemVersion = %q, %v; want %q", v, err, m.Revision())
	}
	if err := b.SetModemDialect(""); err != nil {
		t.Fatal(err)
	}
	if fw := b.ModemFirmware(); fw != nil {
		t.Errorf("dialect removed: ModemFirmware = %T, want nil", fw)
	}
}
