package mqttc

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPacket feeds hostile broker bytes to the packet decoder and the
// parsers of what a broker sends. Nothing may panic, nothing over the
// maximum size may be allocated.
func FuzzPacket(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			p, err := readPacket(r, 4096)
			if err != nil {
				return
			}
			if len(p.body) > 4096 {
				t.Fatalf("packet of %d bytes over the maximum", len(p.body))
			}
			switch p.typ {
			case typePublish:
				if m, err := p.parsePublish(); err == nil && (m.qos > 1 || m.topic == "" || (m.qos == 1 && m.id == 0)) {
					t.Fatalf("accepted %+v", m)
				}
			case typePuback, typeSuback:
				p.parseID()
			case typeConnack:
				p.parseConnack()
			}
		}
	})
}
