package headend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"meterupd/shadow"
)

func TestPackageServerRange(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789"), 1000)
	os.WriteFile(filepath.Join(dir, "p.pkg"), body, 0o644)
	mux := http.NewServeMux()
	mux.Handle("GET /pkg/{name}", &Packages{Dir: dir})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tt := range []struct {
		path, rng string
		code      int
		want      []byte
	}{
		{"/pkg/p.pkg", "bytes=10-19", http.StatusPartialContent, body[10:20]},
		{"/pkg/p.pkg", "bytes=9990-", http.StatusPartialContent, body[9990:]},
		{"/pkg/p.pkg", "", http.StatusOK, body},
		{"/pkg/p.pkg", "bytes=20000-", http.StatusRequestedRangeNotSatisfiable, nil},
		{"/pkg/missing", "", http.StatusNotFound, nil},
		{"/pkg/..%2Fetc", "", http.StatusNotFound, nil},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || (tt.want != nil && !bytes.Equal(got, tt.want)) {
			t.Errorf("GET %s Range %q = %d, %d bytes, want %d, %d bytes", tt.path, tt.rng, resp.StatusCode, len(got), tt.code, len(tt.want))
		}
	}
	st, err := (&Packages{Dir: dir}).Stat("p.pkg")
	sum := sha256.Sum256(body)
	if err != nil || st.SHA256 != hex.EncodeToString(sum[:]) || st.Size != int64(len(body)) {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
}

// recLink records what is published.
type recLink struct {
	mu  sync.Mutex
	got []shadow.StreamData
}

func (l *recLink) Publish(_ context.Context, topic string, _ bool, b []byte) error {
	d, err := shadow.ParseStreamData(b)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.got = append(l.got, d)
	l.mu.Unlock()
	return nil
}
func (l *recLink) Subscribe(string, func(string, []byte)) error { return nil }
func (l *recLink) Close() error                                 { return nil }

func TestStreamerSendsOnlyWhatIsAsked(t *testing.T) {
	dir := t.TempDir()
	body := make([]byte, 1000)
	for i := range body {
		body[i] = byte(i)
	}
	os.WriteFile(filepath.Join(dir, "s.pkg"), body, 0o644)
	l := &recLink{}
	s := &Streamer{Packages: &Packages{Dir: dir}, Link: l, Log: testLog(t)}
	g := shadow.StreamGet{Stream: "s.pkg", Offset: 0, BlockSize: 256}
	g.Want(1)
	g.Want(3) // 768..999: short, the package's end
	g.Want(5) // past the end: nothing
	b, _ := g.Encode()
	if n := s.Handle(context.Background(), "n1", b); n != 2 {
		t.Fatalf("Handle sent %d blocks, want 2", n)
	}
	if len(l.got) != 2 || l.got[0].Offset != 256 || !bytes.Equal(l.got[0].Data, body[256:512]) ||
		l.got[1].Offset != 768 || !bytes.Equal(l.got[1].Data, body[768:]) {
		t.Fatalf("sent %+v", l.got)
	}
	for _, bad := range [][]byte{[]byte("junk"), mustEncode(t, shadow.StreamGet{Stream: "missing", BlockSize: 16, Bitmap: []byte{1}})} {
		if n := s.Handle(context.Background(), "n1", bad); n != 0 {
			t.Fatalf("Handle(%q) sent %d blocks, want 0", bad, n)
		}
	}
}

func mustEncode(t *testing.T, g shadow.StreamGet) []byte {
	b, err := g.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFetchCheck: the test nodes' fetch fails on a wrong digest or size
// and on a server that ignores Range, so the campaign tests that use it
// prove the package server hands out what the documents promise.
func TestFetchCheck(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.pkg"), []byte("package bytes"), 0o644)
	pk := &Packages{Dir: dir}
	mux := http.NewServeMux()
	mux.Handle("GET /pkg/{name}", pk)
	mux.HandleFunc("GET /norange/p.pkg", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("package bytes")) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	st, _ := pk.Stat("p.pkg")
	good := shadow.PackageRef{URL: srv.URL + "/pkg/p.pkg", SHA256: st.SHA256, Size: st.Size}
	for _, tt := range []struct {
		name string
		edit func(*shadow.PackageRef)
		want shadow.Result
	}{
		{"good", func(*shadow.PackageRef) {}, shadow.ResultInitial},
		{"wrong digest", func(r *shadow.PackageRef) { r.SHA256 = strings.Repeat("00", 32) }, shadow.ResultIntegrity},
		{"wrong size", func(r *shadow.PackageRef) { r.Size-- }, shadow.ResultIntegrity},
		{"range ignored", func(r *shadow.PackageRef) { r.URL = srv.URL + "/norange/p.pkg" }, shadow.ResultInvalidURI},
	} {
		ref := good
		tt.edit(&ref)
		if got := fetchCheck(ref); got != tt.want {
			t.Errorf("%s: fetchCheck = %d, want %d", tt.name, got, tt.want)
		}
	}
}
