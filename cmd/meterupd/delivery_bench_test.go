package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"meterupd/agent"
	"meterupd/internal/brokertest"
	"meterupd/internal/netsim"
	"meterupd/localapi"
	"meterupd/manifest"
	"meterupd/mqttlink"
	"meterupd/node"
)

// TestBenchDelivery is `make bench-delivery` (BENCH_DELIVERY=1): a 1 MiB
// signed package delivered to a sim node over a radio link of 2.4 kbit/s
// (simulated, its time scaled by BENCH_SCALE, default 200), which drops
// every ~200 KB, with two power cuts (at a third and at two thirds of the
// package), once over HTTP with Range and once over the in-band MQTT
// block stream. It prints, per transport, the package bytes delivered
// (counted where the server sends them) over the package's size, and the
// protocol's overhead (every other byte on the link, both ways: MQTT
// frames, requests, reports, HTTP headers) over the package's size.
func TestBenchDelivery(t *testing.T) {
	if os.Getenv("BENCH_DELIVERY") == "" {
		t.Skip("a benchmark: make bench-delivery")
	}
	scale := 200
	if v, err := strconv.Atoi(os.Getenv("BENCH_SCALE")); err == nil && v > 0 {
		scale = v
	}
	for _, transport := range []string{"http", "stream"} {
		t.Run(transport, func(t *testing.T) { benchDelivery(t, transport, scale) })
	}
}

func benchDelivery(t *testing.T, transport string, scale int) {
	const size = 1 << 20
	key, err := manifest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := manifest.NewKeyring(key.Public())
	pemKeys, _ := kr.MarshalPEM()
	kf := filepath.Join(t.TempDir(), "keys.pem")
	os.WriteFile(kf, pemKeys, 0o644)
	dir := filepath.Join(t.TempDir(), "node")
	mustMU(t, dir, "sim", "init", dir, "--version", "1.0", "--image-size", strconv.Itoa(size+(64<<10)), "--keys", kf)
	img := make([]byte, size)
	rand.Read(img)
	it := manifest.Item{ID: "sys-2.0", Component: manifest.ComponentSystem, Kind: manifest.KindFull, To: "2.0",
		DeviceTypes: []string{"em300"}, Payload: "sys-2.0.img", Size: size, Digest: digest(img),
		TargetDigest: digest(img), TargetSize: size, Thresholds: manifest.Thresholds{Stop: 1}}
	m := &manifest.Manifest{Schema: 1, Sequence: 11, Items: []manifest.Item{it}}
	if _, err := m.SetBlocks(0, img, manifest.DefaultBlockSize); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(writePkg(t, key, m, [][]byte{img}, nil))
	if err != nil {
		t.Fatal(err)
	}
	radio := netsim.New(300*scale, 200_000, 7) // 2.4 kbit/s = 300 B/s, scaled
	b := brokertest.Start(t, brokertest.Options{})
	brokerAddr, stopB := radio.Proxy(fmt.Sprintf("127.0.0.1:%d", b.Port))
	defer stopB()
	var received atomic.Int64 // package bytes that reached the node
	pkgRef := ""
	switch transport {
	case "http":
		ps := &pkgServer{data: data}
		srv := httptest.NewServer(ps)
		defer srv.Close()
		addr, stop := radio.Proxy(srv.Listener.Addr().String())
		defer stop()
		pkgRef = fmt.Sprintf(`"url": "http://%s/p"`, addr)
	case "stream":
		he := &streamHeadEnd{data: data}
		hctx, hcancel := context.WithCancel(context.Background())
		defer hcancel()
		go he.run(t, hctx, b.URL, "B1") // the head-end's side is not the radio
		pkgRef = `"stream": "em300-2.0"`
	}
	sum := sha256.Sum256(data)
	b.Pub("state/B1/update/delta", []byte(fmt.Sprintf(`{"epoch": 1, "version": 1, "desired": {"job": "bench", "package": {%s, "sha256": %q, "size": %d}, "activate": "command"}}`,
		pkgRef, hex.EncodeToString(sum[:]), len(data))), true)

	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second) / float64(scale)) }
	start := time.Now()
	cuts := 0
	for life := 0; ; life++ {
		ctx, cancel := context.WithCancel(context.Background())
		d := node.NewDaemon(node.Config{Board: "sim", StateDir: dir})
		ddone := make(chan error, 1)
		go func() { ddone <- d.Run(ctx) }()
		l, err := mqttlink.New(mqttlink.Config{Broker: "tcp://" + brokerAddr, ID: "B1", Node: d, StoreDir: filepath.Join(dir, "store"),
			Agent: "bench", OnPackageBytes: func(n int) { received.Add(int64(n)) }, ProgressEvery: sec(60), BackoffMin: sec(10), BackoffMax: sec(600), StreamQuiet: sec(30), KeepAlive: 60 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ldone := make(chan error, 1)
		go func() { ldone <- l.Run(ctx) }()
		done := false
		for !done {
			time.Sleep(20 * time.Millisecond)
			if cuts < 2 && received.Load() >= int64(len(data))*int64(cuts+1)/3 {
				break // a power cut
			}
			v, err := d.Handle(ctx, localapi.Request{Cmd: "status"}, nil)
			if st, ok := v.(agent.Status); err == nil && ok && st.Job == "bench" && st.Update != nil && st.Update.Phase == agent.Installed {
				done = true
			}
			if time.Since(start) > 10*time.Minute {
				t.Fatalf("not installed after 10 minutes; %d bytes delivered", received.Load())
			}
		}
		cancel()
		<-ldone
		<-ddone
		if done {
			break
		}
		cuts++
	}
	wire := radio.Up.Load() + radio.Down.Load()
	fmt.Printf("delivery: transport=%s package_bytes=%d delivered=%.3f overhead=%.3f link_drops=%d power_cuts=%d rate_bps=2400 scale=%d seconds=%.1f simulated_hours=%.2f\n",
		transport, len(data), float64(received.Load())/float64(len(data)), float64(wire-received.Load())/float64(len(data)),
		radio.Drops.Load(), cuts, scale, time.Since(start).Seconds(), time.Since(start).Hours()*float64(scale))
}
