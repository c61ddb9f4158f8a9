package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/headend"
)

func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var b bytes.Buffer
	stdout = &b
	defer func() { stdout = os.Stdout }()
	err := run(context.Background(), args)
	return b.String(), err
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	db, pkgs := filepath.Join(dir, "h.db"), filepath.Join(dir, "packages")
	os.Mkdir(pkgs, 0o755)
	os.WriteFile(filepath.Join(pkgs, "em300-2.0.pkg"), []byte("pkg"), 0o644)
	s, err := headend.Open(context.Background(), db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"m1", "m2", "w1"} {
		var r headend.Reported
		r.State, r.Running.Version, r.DeviceType = "idle", "1.0", "em300"
		if id == "w1" {
			r.DeviceType = "wm100"
		}
		raw, _ := json.Marshal(r)
		if _, err := s.RecordReport(context.Background(), id, uint64(i+1), r, raw, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	common := []string{"--db", db, "--packages", pkgs}
	for _, tt := range []struct {
		args []string
		want string // in the output; "!" + text: an error containing text
	}{
		{[]string{"nodes"}, "m2  em300        1.0      idle"},
		{[]string{"node", "m1"}, "SEQ  AT"},
		{[]string{"node", "nope"}, "!not found"},
		{[]string{"node", "w1", "--reset-seq"}, "whatever its seq"},
		{[]string{"node", "new1", "--device-type", "em300"}, "device type em300"},
		{[]string{"node", "bad/id", "--device-type", "em300"}, "!bad input"},
		{[]string{"campaign", "create", "em300-2.0.pkg", "--select", "device_type=em300,version=1.0", "--waves", "50%,100%"}, "2 nodes in 2 waves"},
		{[]string{"campaign", "create", "em300-2.0.pkg", "--id", "again"}, "4 nodes in 1 waves"},
		{[]string{"campaign", "create", "missing.pkg"}, "!not found"},
		{[]string{"campaign", "create", "em300-2.0.pkg", "--id", "x", "--waves", "50%"}, "!100%"},
		{[]string{"campaign", "create", "em300-2.0.pkg", "--id", "y", "--halt-above", "NaN"}, "!halt-above"},
		{[]string{"campaign", "create", "em300-2.0.pkg", "--id", "y", "--halt-above", "150%"}, "!halt-above"},
		{[]string{"campaign", "create", "em300-2.0.pkg", "--id", "z", "--halt-above", "2%"}, "4 nodes in 1 waves"},
		{[]string{"campaign", "start", "em300-2.0"}, "campaign em300-2.0: start"},
		{[]string{"campaign", "start", "em300-2.0"}, "!changed by someone else"},
		{[]string{"campaign", "pause", "em300-2.0"}, "campaign em300-2.0: pause"},
		{[]string{"campaign", "status", "em300-2.0"}, "pending=2 sent=0"},
		{[]string{"campaign", "cancel", "again"}, "campaign again: cancel"},
		{[]string{"campaign", "status"}, "campaign again: cancelled"},
		{[]string{"bogus"}, "!unknown command"},
	} {
		got, err := runOut(t, append(tt.args, common...)...)
		if want, ok := strings.CutPrefix(tt.want, "!"); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("headend %v = %v, want an error with %q", tt.args, err, want)
			}
			continue
		}
		if err != nil || !strings.Contains(got, tt.want) {
			t.Errorf("headend %v = %q, %v, want %q in it", tt.args, got, err, tt.want)
		}
	}
	got, err := runOut(t, append([]string{"nodes", "--json"}, common...)...)
	var ns []headend.Node
	if err != nil || json.Unmarshal([]byte(got), &ns) != nil || len(ns) != 4 || ns[0].ID != "m1" {
		t.Fatalf("nodes --json = %q, %v", got, err)
	}
}
