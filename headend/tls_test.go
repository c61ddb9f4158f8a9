package headend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"meterupd/headend/internal/servicetest"
	"meterupd/shadow"
)

// writeCerts makes a CA and a server certificate for 127.0.0.1 in dir
// (world-readable: mosquitto drops privileges).
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key")
	for p, b := range map[string][]byte{
		ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// TestServeOverTLSWithStream: `serve --broker ssl://…` against mosquitto
// with a TLS listener; a node's stream request is answered through the
// broker with the blocks it asked for.
func TestServeOverTLSWithStream(t *testing.T) {
	dir, err := os.MkdirTemp("", "headend-tls-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	ca, cert, key := writeCerts(t, dir)
	port := servicetest.FreePort(t)
	// The plain listener of Mosquitto() stays; the TLS one is added.
	_, _ = servicetest.Mosquitto(t, "listener "+strconv.Itoa(port)+" 127.0.0.1", "cafile "+ca, "certfile "+cert, "keyfile "+key)
	tc, err := LoadTLS("", "", ca, false)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := t.TempDir()
	body := make([]byte, 3000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(pkgs, "s.pkg"), body, 0o644)
	url := "ssl://127.0.0.1:" + strconv.Itoa(port)
	srv, err := Serve(context.Background(), Config{DB: filepath.Join(t.TempDir(), "h.db"), Packages: pkgs, HTTPAddr: "127.0.0.1:0",
		BrokerURL: url, TLS: tc, ClientID: "headend", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("n1").SetTLSConfig(tc))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("node connect over TLS: %v", tok.Error())
	}
	defer c.Disconnect(0)
	got := make(chan shadow.StreamData, 16)
	c.Subscribe("state/n1/stream/data", 1, func(_ paho.Client, m paho.Message) {
		if d, err := shadow.ParseStreamData(m.Payload()); err == nil {
			got <- d
		}
	}).Wait()
	g := shadow.StreamGet{Stream: "s.pkg", Offset: 1024, BlockSize: 512}
	g.Want(0)
	g.Want(3) // 2560..2999: the short last block
	b, _ := g.Encode()
	c.Publish("state/n1/stream/get", 1, false, b).Wait()
	want := map[int64]int{1024: 512, 2560: 440}
	for range 2 {
		select {
		case d := <-got:
			if want[d.Offset] != len(d.Data) || string(d.Data) != string(body[d.Offset:d.Offset+int64(len(d.Data))]) {
				t.Fatalf("block at %d of %d bytes, want %v", d.Offset, len(d.Data), want)
			}
			delete(want, d.Offset)
		case <-time.After(10 * time.Second):
			t.Fatalf("blocks missing: %v", want)
		}
	}
	select {
	case d := <-got:
		t.Fatalf("a block not asked for: %d", d.Offset)
	case <-time.After(300 * time.Millisecond):
	}
}
