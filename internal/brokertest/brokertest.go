// Package brokertest starts Debian's mosquitto for a test: on 127.0.0.1, a
// free port, a configuration the test writes in its own temporary
// directory, and stops it when the test ends. Restart stops and starts it
// again on the same port (a broker restart in the middle of a transfer).
package brokertest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"meterupd/internal/realtool"
)

// Broker is a running mosquitto.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	// Port is the plain listener's, which Pub and Sub use.
	Port int
	// URL is the node's: tcp://127.0.0.1:Port, or with TLS ssl:// and a
	// listener of its own that requires a client certificate.
	URL string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// Options configure the broker.
type Options struct {
	// TLS, when set, makes the listener TLS with these PEM files and
	// require a client certificate signed by CAFile.
	CAFile, CertFile, KeyFile string
	// Extra lines of configuration.
	Extra string
}

// Start starts mosquitto.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	bin := realtool.Need(t, "mosquitto", "mosquitto")
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\nmax_queued_messages 10000\n", port)
	scheme, nodePort := "tcp", port
	if o.CertFile != "" {
		// The node connects with TLS; the test's own clients
		// (mosquitto_pub/sub) use a plain listener beside it.
		scheme, nodePort = "ssl", freePort(t)
		conf = fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\n", nodePort, o.CAFile, o.CertFile, o.KeyFile) +
			conf
	}
	conf += o.Extra
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Broker{t: t, bin: bin, conf: path, Port: port, URL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, nodePort)}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *Broker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = &bytes.Buffer{}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd = cmd
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("mosquitto did not listen on %d: %s", b.Port, b.log)
}

// Stop stops the broker (idempotent).
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	b.cmd.Wait()
	b.cmd = nil
}

// Restart stops the broker and starts it again on the same port: clients
// lose their connections (and, without persistence, their sessions).
func (b *Broker) Restart() {
	b.Stop()
	b.start()
}

// Pub publishes with Debian's mosquitto_pub: a client independent of our
// code, so the contract tested is the one on the wire.
func (b *Broker) Pub(topic string, payload []byte, retain bool) {
	b.t.Helper()
	bin := realtool.Need(b.t, "mosquitto_pub", "mosquitto-clients")
	args := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(b.Port), "-q", "1", "-t", topic, "-s"}
	if retain {
		args = append(args, "-r")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(payload)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, out)
	}
}

// Sub follows topic with Debian's mosquitto_sub; Lines returns what came
// (one payload a line) so far.
type Sub struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *Sub) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// Lines returns the lines received so far.
func (s *Sub) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range bytes.Split(s.buf.Bytes(), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}

// Sub starts mosquitto_sub on topic (QoS 1); it ends with the test.
func (b *Broker) Sub(topic string) *Sub {
	b.t.Helper()
	bin := realtool.Need(b.t, "mosquitto_sub", "mosquitto-clients")
	s := &Sub{}
	s.cmd = exec.Command(bin, "-h", "127.0.0.1", "-p", fmt.Sprint(b.Port), "-q", "1", "-t", topic)
	s.cmd.Stdout = s
	if err := s.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	time.Sleep(200 * time.Millisecond) // subscribed before anything is published
	return s
}
