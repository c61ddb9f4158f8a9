package mqttc

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"meterupd/internal/brokertest"
)

// received collects what a client's handler gets.
type received chan string

func (r received) handler(topic string, payload []byte) { r <- topic + " " + string(payload) }

func (r received) want(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-r:
		if got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing received, want %q", want)
	}
}

func dial(t *testing.T, addr string, o Options) *Client {
	t.Helper()
	c, err := dialErr(t, addr, o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Disconnect)
	return c
}

func dialErr(t *testing.T, addr string, o Options) (*Client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Connect(ctx, conn, o)
}

func addr(b *brokertest.Broker) string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// waitLines waits until sub has seen want.
func waitLines(t *testing.T, sub *brokertest.Sub, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if slices.Equal(sub.Lines(), want) {
			return
		}
	}
	t.Fatalf("mosquitto_sub got %q, want %q", sub.Lines(), want)
}

func TestMosquittoPublishSubscribe(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	r := make(received, 10)
	c := dial(t, addr(b), Options{ClientID: "n1", KeepAlive: 30 * time.Second, Handler: r.handler})
	ctx := context.Background()
	if err := c.Subscribe(ctx, map[string]byte{"state/n1/in": 1, "state/n1/zero": 0}); err != nil {
		t.Fatal(err)
	}
	// Broker to us, QoS 1 and 0, by Debian's mosquitto_pub.
	b.Pub("state/n1/in", []byte("hello"), false)
	r.want(t, "state/n1/in hello")
	b.Pub("state/n1/zero", []byte("zero"), false)
	r.want(t, "state/n1/zero zero")
	// Us to the broker, read back by mosquitto_sub.
	sub := b.Sub("state/n1/out")
	if err := c.Publish(ctx, "state/n1/out", 1, false, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "state/n1/out", 0, false, []byte("zero")); err != nil {
		t.Fatal(err)
	}
	waitLines(t, sub, "one", "zero")
}

func TestMosquittoRetained(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	// Retained by us, then received on subscribe by a second session.
	c := dial(t, addr(b), Options{ClientID: "n1"})
	if err := c.Publish(context.Background(), "state/n1/link", 1, true, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	r := make(received, 10)
	c2 := dial(t, addr(b), Options{ClientID: "n2", Handler: r.handler})
	if err := c2.Subscribe(context.Background(), map[string]byte{"state/n1/link": 1}); err != nil {
		t.Fatal(err)
	}
	r.want(t, "state/n1/link kept")
}

func TestMosquittoWill(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	sub := b.Sub("state/n1/link")
	will := &Message{Topic: "state/n1/link", Payload: []byte("offline"), QoS: 1, Retain: true}
	// A DISCONNECT discards the will.
	c := dial(t, addr(b), Options{ClientID: "n1", Will: will})
	c.Disconnect()
	// A dropped connection publishes it.
	conn, err := net.Dial("tcp", addr(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(context.Background(), conn, Options{ClientID: "n1", Will: will}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitLines(t, sub, "offline")
}

func TestMosquittoKeepAlive(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := dial(t, addr(b), Options{ClientID: "n1", KeepAlive: time.Second})
	// mosquitto drops a client silent for 1.5 keep-alives: our pings
	// keep the session over three of them.
	time.Sleep(3500 * time.Millisecond)
	if !c.IsConnected() {
		t.Fatalf("connection ended: %v", c.Err())
	}
	if err := c.Publish(context.Background(), "t", 1, false, []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestMosquittoRefused(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Extra: "allow_anonymous false\n"})
	_, err := dialErr(t, addr(b), Options{ClientID: "n1", Username: "meter", Password: "wrong"})
	var re *RefusedError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &re) || (re.Code != 4 && re.Code != 5) {
		t.Fatalf("connect: %v, want a refusal (4 or 5)", err)
	}
}

func TestMosquittoTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "n1", ca, caKey)
	p := func(n string) string { return filepath.Join(dir, n) }
	b := brokertest.Start(t, brokertest.Options{CAFile: p("ca.pem"), CertFile: p("server.pem"), KeyFile: p("server.key")})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	hostport := strings.TrimPrefix(b.URL, "ssl://")
	connect := func(certs []tls.Certificate) (*Client, error) {
		conn, err := tls.Dial("tcp", hostport, &tls.Config{RootCAs: pool, Certificates: certs, ServerName: "127.0.0.1"})
		if err != nil {
			return nil, err
		}
		return Connect(context.Background(), conn, Options{ClientID: "n1"})
	}
	if c, err := connect(nil); err == nil {
		// TLS 1.3 reports the refused certificate on the first read.
		c.Disconnect()
		t.Fatal("connected without a client certificate")
	}
	cert, err := tls.LoadX509KeyPair(p("n1.pem"), p("n1.key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := connect([]tls.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	sub := b.Sub("state/n1/out")
	if err := c.Publish(context.Background(), "state/n1/out", 1, false, []byte("over tls")); err != nil {
		t.Fatal(err)
	}
	waitLines(t, sub, "over tls")
}

// newCert writes NAME.pem and NAME.key in dir: a CA when parent is nil,
// else a leaf for 127.0.0.1 signed by it.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for file, blk := range map[string]*pem.Block{name + ".pem": {Type: "CERTIFICATE", Bytes: der}, name + ".key": {Type: "PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, k
}

// fakeBroker accepts one connection, answers CONNECT with CONNACK and then
// runs script: a broker misbehaving in ways mosquitto never does.
func fakeBroker(t *testing.T, script func(r *bufio.Reader, conn net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		if p, err := readPacket(r, 1024); err != nil || p.typ != typeConnect {
			return
		}
		conn.Write([]byte{typeConnack << 4, 2, 0, 0})
		script(r, conn)
	}()
	return l.Addr().String()
}

func TestHostileBroker(t *testing.T) {
	tests := []struct {
		name  string
		reply []byte
		want  error
	}{
		{"oversize packet", []byte{typePublish << 4, 0xff, 0xff, 0xff, 0x7f}, ErrTooLarge},
		{"remaining length of 5 bytes", []byte{typePublish << 4, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{"QoS 2 publish", []byte{typePublish<<4 | 4, 5, 0, 1, 't', 0, 1}, ErrMalformed},
		{"topic past the end", []byte{typePublish << 4, 3, 0, 9, 't'}, ErrMalformed},
		{"CONNECT from the broker", []byte{typeConnect << 4, 0}, ErrMalformed},
		{"short PUBACK", []byte{typePuback << 4, 1, 0}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := fakeBroker(t, func(r *bufio.Reader, conn net.Conn) {
				conn.Write(tt.reply)
				r.ReadByte() // until the client hangs up
			})
			c, err := dialErr(t, a, Options{ClientID: "n1", MaxPacket: 1024, Handler: func(string, []byte) {}})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection still up")
			}
			if got := c.Err(); !errors.Is(got, tt.want) {
				t.Fatalf("Err() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMissedPingResp(t *testing.T) {
	a := fakeBroker(t, func(r *bufio.Reader, conn net.Conn) {
		for { // swallow PINGREQs, never answer
			if _, err := readPacket(r, 1024); err != nil {
				return
			}
		}
	})
	c, err := dialErr(t, a, Options{ClientID: "n1", KeepAlive: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still up without PINGRESP")
	}
	if !errors.Is(c.Err(), ErrPingTimeout) {
		t.Fatalf("Err() = %v, want ErrPingTimeout", c.Err())
	}
}

func TestSubscribeRefused(t *testing.T) {
	a := fakeBroker(t, func(r *bufio.Reader, conn net.Conn) {
		p, err := readPacket(r, 1024)
		if err != nil || p.typ != typeSubscribe {
			return
		}
		conn.Write([]byte{typeSuback << 4, 3, p.body[0], p.body[1], 0x80})
		r.ReadByte()
	})
	c, err := dialErr(t, a, Options{ClientID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	if err := c.Subscribe(context.Background(), map[string]byte{"state/n1/delta": 1}); !errors.Is(err, ErrSubscribe) {
		t.Fatalf("Subscribe: %v, want ErrSubscribe", err)
	}
}

func TestPublishTimeout(t *testing.T) {
	a := fakeBroker(t, func(r *bufio.Reader, conn net.Conn) { io.Copy(io.Discard, r) }) // never PUBACK
	c, err := dialErr(t, a, Options{ClientID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Publish(ctx, "t", 1, false, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish: %v, want a deadline", err)
	}
}
