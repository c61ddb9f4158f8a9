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
// gorilla/websocket, golang.org/x/net and x/sync (393,216 B on armv7), and
// with them the standard library's net/http and HTTP/2 (983,040 B more),
// which paho's websocket transport pulls in. The link needs an MQTT 3.1.1
// client over TCP or TLS and an HTTP/1.1 Range GET: it uses its own
// (internal/mqttc, store/http.go). Tests may still use paho as a head-end
// stand-in: test code is not linked into the meter binary.
var nodeModules = map[string]string{
	"meterupd":                     "this project",
	"github.com/fxamacker/cbor/v2": "journal records and manifests (CBOR with decoder limits)",
	"github.com/x448/float16":      "required by fxamacker/cbor",
	"github.com/veraison/go-cose":  "COSE_Sign1 verification of manifests",
	"go.bug.st/serial":             "the modem's UART, the technician console's port",
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

// TestNodeLinksNoNetHTTP keeps net/http (and with it HTTP/2, 983,040 B on
// armv7) out of the node binary: the link's MQTT client and package fetch
// are small ones of their own.
func TestNodeLinksNoNetHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "net/http" || strings.HasPrefix(p, "net/http/") {
			t.Errorf("meterupd links %s (see docs/dependencies.md)", p)
		}
	}
}
