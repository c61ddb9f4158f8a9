// Package servicetest starts the real services the head-end's tests run
// against: Debian's PostgreSQL and mosquitto, each on 127.0.0.1 and a free
// port, with a configuration the test writes, stopped when the test ends.
//
// Tests run as root here: PostgreSQL refuses to run as root, so it runs as
// the "postgres" user (its data directory is handed to it); mosquitto drops
// privileges to its own user, so its directory is world-readable.
package servicetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"meterupd/internal/realtool"
)

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sharedDir makes a directory another user can enter.
func sharedDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// asUser runs cmd as the named user when the test runs as root.
func asUser(t testing.TB, cmd *exec.Cmd, name string, chown ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v (it comes with the Debian package)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range chown {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}

// Postgres starts a PostgreSQL server with a fresh cluster and returns
// its URL (database "headend", trust authentication on 127.0.0.1 only).
func Postgres(t testing.TB) string {
	t.Helper()
	initdb, server := pgBin(t, "initdb"), pgBin(t, "postgres")
	root := sharedDir(t, "headend-pg-")
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(initdb, "-D", data, "-A", "trust", "-U", "headend", "--no-sync", "-E", "UTF8")
	cmd.Stdout, cmd.Stderr = &out, &out
	asUser(t, cmd, "postgres", root, data)
	if err := cmd.Run(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out.String())
	}
	port := FreePort(t)
	srv := exec.Command(server, "-D", data, "-p", strconv.Itoa(port), "-k", root,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=100")
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	asUser(t, srv, "postgres")
	if err := srv.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-done
		}
	})
	waitPort(t, port, "postgres", &log)
	// The cluster's default database is "postgres"; make ours.
	create := exec.Command(pgBin(t, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "headend", "headend")
	for i := 0; ; i++ {
		o, err := create.CombinedOutput()
		if err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("createdb: %v\n%s\n%s", err, o, log.String())
		}
		time.Sleep(100 * time.Millisecond)
		create = exec.Command(create.Path, create.Args[1:]...)
	}
	return fmt.Sprintf("postgres://headend@127.0.0.1:%d/headend?sslmode=disable", port)
}

// pgBin finds a PostgreSQL server program: Debian installs them in
// /usr/lib/postgresql/<major>/bin, off PATH (the newest major is taken).
func pgBin(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(found) > 0 {
		slices.SortFunc(found, func(a, b string) int { return pgMajor(b) - pgMajor(a) })
		return found[0]
	}
	return realtool.Need(t, name, "postgresql")
}

func pgMajor(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// Mosquitto starts Debian's mosquitto with a configuration the test
// writes plus extra lines, and returns its tcp:// URL and a function that
// kills it (for broker-restart tests; also done at cleanup).
func Mosquitto(t testing.TB, extra ...string) (url string, kill func()) {
	t.Helper()
	bin := realtool.Need(t, "mosquitto", "mosquitto")
	dir := sharedDir(t, "headend-mq-")
	port := FreePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000\n", port)
	for _, l := range extra {
		conf += l + "\n"
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	kill = func() {
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(kill)
	waitPort(t, port, "mosquitto", &log)
	return fmt.Sprintf("tcp://127.0.0.1:%d", port), kill
}

func waitPort(t testing.TB, port int, name string, log *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s did not listen on %d: %v\n%s", name, port, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
