package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// nodeModules are the modules the node binary may link, each a deliberate
// choice that costs flash on every meter (docs/dependencies.md has the
// measured sizes). A new one fails this test until it is added here, with
// its reason.
//
// Not on it, on purpose: github.com/eclipse/paho.mqtt.golang, with
// gorilla/websocket, golang.org/x/net and x/sync. Paho's websocket
// transport drags net/http (and HTTP/2) into the binary: 393,216 B on
// ARMv7 for a link that needs an MQTT 3.1.1 client over TCP or TLS; the
// link uses its own (internal/mqttc) and fetches packages with a plain
// HTTP/1.1 Range GET (store/http.go). Tests may still use paho as a
// head-end stand-in: test code is not linked into the meter binary.
var nodeModules = map[string]string{
	"meterupd":                     "this project",
	"github.com/fxamacker/cbor/v2": "journal records and manifests (CBOR with decoder limits)",
	"github.com/x448/float16":      "required by fxamacker/cbor",
	"github.com/veraison/go-cose":  "COSE_Sign1 verification of manifests",
	"go.bug.st/serial":             "the modem's UART",
	"golang.org/x/sys":             "MTD ioctls, pseudo-terminals, module loading",
	"github.com/ulikunitz/xz":      "delta: decompression of node-format streams",
	"github.com/dsnet/compress":    "delta: bzip2 of BSDIFF40/43 patches",
}

// TestNodeDependencies is the dependency guard of the node binary
// (tailscale's deptest): it lists the modules cmd/meterupd links.
func TestNodeDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var got []string
	for _, m := range strings.Fields(string(out)) {
		if !slices.Contains(got, m) {
			got = append(got, m)
		}
	}
	for _, m := range got {
		if _, ok := nodeModules[m]; !ok {
			t.Errorf("meterupd links %s, which is not on the node's dependency list: measure its size on ARM and add it with a reason", m)
		}
	}
}
