package node

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentKnowsNoTransport: the agent imports no modem driver, serial
// port, MQTT client, socket API or this composition root (DESIGN.md,
// "Layout and dependency direction"); the node links no board driver
// itself.
func TestAgentKnowsNoTransport(t *testing.T) {
	for pkg, banned := range map[string][]string{
		"meterupd/agent": {"meterupd/boards/modem", "go.bug.st/serial", "github.com/eclipse/paho.mqtt.golang", "meterupd/localapi", "meterupd/node"},
		"meterupd/node":  {"meterupd/boards/sim", "meterupd/boards/modem", "meterupd/boards/am335x"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, b := range banned {
			for _, d := range deps {
				if d == b {
					t.Errorf("%s imports %s", pkg, b)
				}
			}
		}
	}
}
