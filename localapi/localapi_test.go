package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echo answers status with the request, and streams three events for
// events.
type echo struct{}

func (echo) Handle(ctx context.Context, req Request, emit func(Event)) (any, error) {
	switch req.Cmd {
	case "events":
		for i := 1; i <= 3; i++ {
			emit(Event{Seq: uint64(i), Kind: "state"})
		}
		return nil, nil
	case "rollback":
		return nil, errors.New("rollback refused: no previous good set")
	}
	return req, nil
}

func serve(t *testing.T, path string) {
	t.Helper()
	ln, err := Listen(path, -1, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: echo{}, Agent: "test"}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func TestCallAndErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	serve(t, sock)
	c, err := Dial(context.Background(), sock, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h := c.Hello(); h.Proto != Proto || h.Agent != "test" || len(h.Commands) != len(Commands) {
		t.Errorf("hello = %+v", h)
	}
	var got Request
	if err := c.Call(context.Background(), Request{Cmd: "status", Reason: "x"}, nil, &got); err != nil || got.Reason != "x" {
		t.Errorf("status = %+v, %v", got, err)
	}
	var evs []uint64
	if err := c.Call(context.Background(), Request{Cmd: "events"}, func(e Event) { evs = append(evs, e.Seq) }, nil); err != nil || len(evs) != 3 {
		t.Errorf("events = %v, %v", evs, err)
	}
	tests := []struct {
		req  Request
		code string
	}{
		{Request{Cmd: "format-flash"}, CodeUnknownCommand},
		{Request{Cmd: "install", Paths: []string{"relative.img"}}, CodeBadRequest},
		{Request{Cmd: "install"}, CodeBadRequest},
		{Request{Cmd: "rollback"}, CodeRefused},
	}
	for _, tt := range tests {
		err := c.Call(context.Background(), tt.req, nil, nil)
		var we *Error
		if !errors.As(err, &we) || we.Code != tt.code {
			t.Errorf("Call(%+v) = %v, want code %s", tt.req, err, tt.code)
		}
	}
}

// TestProtocolVersions: a newer client (higher proto, unknown fields) is
// served in the daemon's protocol; one below MinProto, or one that does
// not say hello, is refused with a sentence.
func TestProtocolVersions(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	serve(t, sock)
	tests := []struct {
		hello   string
		wantErr bool
	}{
		{`{"hello":{"proto":7,"client":"meterupd 9.0","future":true}}`, false},
		{`{"hello":{"proto":0}}`, true},
		{`{"id":1,"cmd":"status"}`, true},
		{`not json`, true},
	}
	for _, tt := range tests {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write([]byte(tt.hello + "\n"))
		var l daemonLine
		if err := json.NewDecoder(bufio.NewReader(nc)).Decode(&l); err != nil {
			t.Fatalf("%s: %v", tt.hello, err)
		}
		switch {
		case tt.wantErr && l.Error == nil:
			t.Errorf("%s: answered %+v, want a refusal", tt.hello, l)
		case !tt.wantErr && (l.Hello == nil || l.Hello.Proto != Proto):
			t.Errorf("%s: answered %+v, want proto %d", tt.hello, l, Proto)
		}
		if !tt.wantErr {
			nc.Write([]byte(`{"id":5,"cmd":"status","reason":"r","unknown_field":1}` + "\n"))
			dec := json.NewDecoder(nc)
			if err := dec.Decode(&l); err != nil || l.ID != 5 || !l.Done || l.Error != nil {
				t.Errorf("request with an unknown field: %+v, %v", l, err)
			}
		}
		nc.Close()
	}
}

// TestLongSocketPath: a path past the 108 bytes of a socket address
// works (through the directory's descriptor).
func TestLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	sock := filepath.Join(dir, "meterupd.sock")
	if len(sock) <= maxSunPath {
		t.Fatalf("path %d bytes, not long enough for the test", len(sock))
	}
	serve(t, sock)
	c, err := Dial(context.Background(), sock, "test")
	if err != nil {
		t.Fatalf("Dial(%d-byte path): %v", len(sock), err)
	}
	c.Close()
	_, err = Dial(context.Background(), filepath.Join(dir, strings.Repeat("f", 120)), "test")
	if !errors.Is(err, ErrPathTooLong) {
		t.Errorf("Dial(name longer than an address) = %v, want ErrPathTooLong", err)
	}
}

// TestSocketModeAndStale: the socket is its owner's alone; a stale socket
// file is replaced, anything else at the path is left alone.
func TestSocketModeAndStale(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	ln, err := Listen(sock, -1, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want 0600", fi.Mode(), err)
	}
	// A second listener on a live path without removeStale fails.
	if _, err := Listen(sock, -1, false); err == nil {
		t.Errorf("Listen on a live socket succeeded")
	}
	ln.Close()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
	if _, err := Dial(context.Background(), sock, "t"); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("Dial without a daemon = %v, want ErrNoDaemon", err)
	}
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("keep"), 0o644)
	if _, err := Listen(regular, -1, true); err == nil {
		t.Errorf("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Errorf("regular file changed")
	}
}

// FuzzServe: whatever a client sends, the server answers or hangs up; it
// never panics and never answers more than one line per line received
// plus the events.
func FuzzServe(f *testing.F) {
	f.Add([]byte(`{"hello":{"proto":1}}` + "\n" + `{"id":1,"cmd":"status"}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		done := make(chan struct{})
		s := &Server{Handler: echo{}}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { s.serveConn(ctx, a, discard()); close(done) }()
		go func() {
			b.Write(in)
			b.Write([]byte("\n"))
			time.Sleep(time.Millisecond)
			cancel()
		}()
		r := bufio.NewReader(b)
		for {
			if _, err := readLine(r); err != nil {
				break
			}
		}
		<-done
	})
}

// TestSocketGroup: with a group the socket is 0660 and that group's.
func TestSocketGroup(t *testing.T) {
	const gid = 65534 // nogroup on Debian; any gid works for root
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := Listen(sock, gid, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Gid != gid {
		t.Errorf("socket mode %v gid %d, want 0660 and %d", fi.Mode().Perm(), st.Gid, gid)
	}
}
