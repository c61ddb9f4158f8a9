package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"meterupd/boards/modem/modemtest"
)

func runModem(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, append([]string{"modem"}, args...), &out, &errb)
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func TestModemCommandJSON(t *testing.T) {
	path, sim := modemtest.Start(t)
	sim.SetSignal(10, 99)
	out, err := runModem(t, "--port", path, "--json")
	if err != nil {
		t.Fatalf("meterupd modem --json: %v", err)
	}
	var got modemReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if got.Port != path || got.Identity.Model != modemtest.DefaultModel || got.Firmware != modemtest.DefaultRevision ||
		got.SignalDBm == nil || *got.SignalDBm != -93 || !got.Linked || got.Lines != nil {
		t.Errorf("meterupd modem --json = %s", out)
	}
}

func TestModemCommandText(t *testing.T) {
	path, sim := modemtest.Start(t)
	sim.SetSignal(99, 99)
	out, err := runModem(t, "--port", path)
	if err != nil {
		t.Fatalf("meterupd modem: %v", err)
	}
	// Compare with the columns' padding collapsed.
	var flat []string
	for _, l := range strings.Split(out, "\n") {
		flat = append(flat, strings.Join(strings.Fields(l), " "))
	}
	text := strings.Join(flat, "\n")
	for _, want := range []string{"model " + modemtest.DefaultModel, "firmware " + modemtest.DefaultRevision,
		"eps (AT+CEREG) home", "signal unknown (rssi 99, ber 99)", "linked no: no signal", "control lines none"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestModemCommandNeedsPort(t *testing.T) {
	t.Setenv("METERUPD_MODEM_PORT", "")
	_, err := runModem(t)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("meterupd modem without a port = %v, want a usage error", err)
	}
}
