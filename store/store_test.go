package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"meterupd/manifest"
	"meterupd/store/storetest"
)

// server serves a package with Range, and misbehaves on request.
type server struct {
	t    testing.TB
	data []byte
	mu   sync.Mutex
	sent int64 // body bytes sent
	// sentIn counts body bytes sent that lie in [lo, hi).
	lo, hi, sentIn int64
	cutAt          int64         // close the connection at this package offset, once (0: never)
	corrupt        map[int64]int // offsets to flip, and how many times
	ignoreRange    bool
	extra          int // bytes appended past the range
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data := bytes.Clone(s.data)
	for off, n := range s.corrupt {
		if n > 0 {
			data[off] ^= 0x5a
		}
	}
	ignore, extra := s.ignoreRange, s.extra
	s.mu.Unlock()
	if ignore {
		w.Write(data)
		return
	}
	var a, b int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err != nil || a > b || b >= int64(len(data)) {
		http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	body := data[a : b+1]
	w.Header().Set("Content-Range", "bytes "+itoa(a)+"-"+itoa(b)+"/"+itoa(int64(len(data))))
	w.Header().Set("Content-Length", itoa(int64(len(body))+int64(extra)))
	w.WriteHeader(http.StatusPartialContent)
	s.mu.Lock()
	for off := range s.corrupt {
		if off >= a && off <= b && s.corrupt[off] > 0 {
			s.corrupt[off]--
		}
	}
	if s.cutAt > a && s.cutAt <= b {
		body = body[:s.cutAt-a]
		s.cutAt = 0
		s.count(a, body)
		s.mu.Unlock()
		w.Write(body)
		w.(http.Flusher).Flush()
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	s.count(a, body)
	s.mu.Unlock()
	w.Write(body)
	w.Write(make([]byte, extra))
}

func (s *server) count(a int64, body []byte) {
	s.sent += int64(len(body))
	lo, hi := max(a, s.lo), min(a+int64(len(body)), s.hi)
	if hi > lo {
		s.sentIn += hi - lo
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func newServer(t testing.TB, data []byte) (*server, string) {
	t.Helper()
	s := &server{t: t, data: data, corrupt: map[int64]int{}}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + "/pkg"
}

func opts(t testing.TB, p storetest.Pkg, dir string) Options {
	return Options{Dir: dir, Size: int64(len(p.Bytes)), Keys: p.Keys, Floor: 1}
}

// payloadRange is where a payload's data lies in the package.
func payloadRange(t testing.TB, p storetest.Pkg, name string) (int64, int64) {
	t.Helper()
	i := bytes.Index(p.Bytes, p.Payloads[name])
	if i < 0 {
		t.Fatalf("payload %s not found", name)
	}
	return int64(i), int64(i + len(p.Payloads[name]))
}

func checkFetched(t testing.TB, p storetest.Pkg, res *Result, names ...string) {
	t.Helper()
	if len(res.Payloads) != len(names) {
		t.Fatalf("fetched %d payloads, want %d", len(res.Payloads), len(names))
	}
	for _, n := range names {
		got, err := os.ReadFile(res.Payloads[n])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p.Payloads[n]) {
			t.Fatalf("payload %s differs", n)
		}
	}
}

func TestFetchWhole(t *testing.T) {
	for _, blocks := range []bool{true, false} {
		t.Run(map[bool]string{true: "schema2", false: "schema1"}[blocks], func(t *testing.T) {
			p := storetest.Package(t, blocks)
			s, url := newServer(t, p.Bytes)
			var last [2]int64
			o := opts(t, p, t.TempDir())
			o.Progress = func(d, n int64) { last = [2]int64{d, n} }
			res, err := Fetch(context.Background(), &HTTP{URL: url}, o)
			if err != nil {
				t.Fatal(err)
			}
			checkFetched(t, p, res, p.Full.Payload, p.Delta.Payload)
			if want := int64(50000); last != [2]int64{want, want} {
				t.Errorf("last progress %v, want [%d %d]", last, want, want)
			}
			// Everything but the tar padding and the end marker.
			if s.sent > int64(len(p.Bytes)) {
				t.Errorf("sent %d bytes for a %d-byte package", s.sent, len(p.Bytes))
			}
			// A second fetch from the same directory fetches nothing again
			// but the manifest check.
			before := s.sent
			if _, err := Fetch(context.Background(), &HTTP{URL: url}, o); err != nil {
				t.Fatal(err)
			}
			if s.sent != before {
				t.Errorf("a finished fetch asked for %d bytes more", s.sent-before)
			}
		})
	}
}

// TestFetchSelect: a node that needs only the full image never fetches a
// byte of the delta.
func TestFetchSelect(t *testing.T) {
	p := storetest.Package(t, true)
	s, url := newServer(t, p.Bytes)
	s.lo, s.hi = payloadRange(t, p, p.Delta.Payload)
	o := opts(t, p, t.TempDir())
	o.Select = func(m *manifest.Manifest) ([]string, error) { return []string{p.Full.Payload}, nil }
	res, err := Fetch(context.Background(), &HTTP{URL: url}, o)
	if err != nil {
		t.Fatal(err)
	}
	checkFetched(t, p, res, p.Full.Payload)
	if s.sentIn != 0 {
		t.Errorf("%d bytes of the unneeded payload were sent", s.sentIn)
	}
}

// TestCutLinkResumes: the link breaks in the middle of a window; the next
// fetch asks only for what is missing: at most one block twice.
func TestCutLinkResumes(t *testing.T) {
	p := storetest.Package(t, true)
	s, url := newServer(t, p.Bytes)
	s.lo, s.hi = payloadRange(t, p, p.Full.Payload)
	dir := t.TempDir()
	s.cutAt = s.lo + 2*4096 + 2000 // in the third block of a window
	_, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, dir))
	if err == nil {
		t.Fatal("the fetch did not notice the cut")
	}
	res, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, dir))
	if err != nil {
		t.Fatal(err)
	}
	checkFetched(t, p, res, p.Full.Payload, p.Delta.Payload)
	if extra := s.sentIn - int64(p.Full.Size); extra > manifest.DefaultBlockSize {
		t.Errorf("the image's bytes were sent %d times over: %d bytes more than its size, more than one block", s.sentIn, extra)
	}
}

// TestPowerCutBeforeRecord: a power cut after a block's data was synced but
// before its record was appended loses that block only.
func TestPowerCutBeforeRecord(t *testing.T) {
	p := storetest.Package(t, true)
	s, url := newServer(t, p.Bytes)
	s.lo, s.hi = payloadRange(t, p, p.Full.Payload)
	dir := t.TempDir()
	s.cutAt = s.lo + 6*4096 + 100
	if _, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, dir)); err == nil {
		t.Fatal("no error at the cut")
	}
	have := filepath.Join(dir, payloadPre+p.Full.Payload+haveExt)
	b, err := os.ReadFile(have)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 6*recordSize {
		t.Fatalf("%d records after the cut, want 6", len(b)/recordSize)
	}
	// The last record torn half-way, as a cut during its append leaves it.
	if err := os.WriteFile(have, b[:len(b)-recordSize/2], 0o644); err != nil {
		t.Fatal(err)
	}
	sentBefore := s.sentIn
	res, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, dir))
	if err != nil {
		t.Fatal(err)
	}
	checkFetched(t, p, res, p.Full.Payload, p.Delta.Payload)
	if got, want := s.sentIn-sentBefore, int64(p.Full.Size)-5*4096; got != want {
		t.Errorf("resumed with %d image bytes, want %d (blocks 5 to the end)", got, want)
	}
}

// TestCorruptBlockRefetchedAlone: a block corrupted on the way is refused
// on arrival and asked for again on its own.
func TestCorruptBlockRefetchedAlone(t *testing.T) {
	p := storetest.Package(t, true)
	s, url := newServer(t, p.Bytes)
	lo, hi := payloadRange(t, p, p.Full.Payload)
	s.lo, s.hi = lo, hi
	s.corrupt[lo+3*4096+17] = 1
	res, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	checkFetched(t, p, res, p.Full.Payload, p.Delta.Payload)
	if res.Stats.BadBlocks != 1 {
		t.Errorf("BadBlocks = %d, want 1", res.Stats.BadBlocks)
	}
	if got, want := s.sentIn, int64(p.Full.Size)+4096; got != want {
		t.Errorf("image bytes sent %d, want %d (the image and block 3 again)", got, want)
	}
}

func TestPersistentCorruptionFails(t *testing.T) {
	p := storetest.Package(t, true)
	s, url := newServer(t, p.Bytes)
	lo, _ := payloadRange(t, p, p.Full.Payload)
	s.corrupt[lo+100] = 1000
	_, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, t.TempDir()))
	if !errors.Is(err, ErrBadBlock) {
		t.Fatalf("Fetch = %v, want ErrBadBlock", err)
	}
}

func TestSchema1CorruptionDiscards(t *testing.T) {
	p := storetest.Package(t, false)
	s, url := newServer(t, p.Bytes)
	lo, _ := payloadRange(t, p, p.Full.Payload)
	s.corrupt[lo+100] = 1
	dir := t.TempDir()
	_, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, dir))
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("Fetch = %v, want ErrDigest", err)
	}
	if _, err := os.Stat(filepath.Join(dir, payloadPre+p.Full.Payload)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the bad payload was kept: %v", err)
	}
	res, err := Fetch(context.Background(), &HTTP{URL: url}, opts(t, p, dir))
	if err != nil {
		t.Fatal(err)
	}
	checkFetched(t, p, res, p.Full.Payload, p.Delta.Payload)
}

func TestRefusals(t *testing.T) {
	p := storetest.Package(t, true)
	for _, tc := range []struct {
		name  string
		setup func(s *server, o *Options)
		want  error
	}{
		{"server ignores Range", func(s *server, o *Options) { s.ignoreRange = true }, ErrRangeIgnored},
		{"body longer than the range", func(s *server, o *Options) { s.extra = 10 }, ErrTooLong},
		{"no room in the store", func(s *server, o *Options) { o.MaxBytes = 45000 }, ErrNoRoom},
		{"replayed sequence", func(s *server, o *Options) { o.Floor = 5 }, manifest.ErrReplay},
		{"unknown key", func(s *server, o *Options) {
			k, _ := manifest.NewKeyring(storetest.Key(t, "test-p256").Public())
			o.Keys = k
		}, manifest.ErrUnknownKey},
		{"tampered manifest", func(s *server, o *Options) { s.data = bytes.Clone(s.data); s.data[600] ^= 1 }, manifest.ErrBadSignature},
		{"declared size too small", func(s *server, o *Options) { o.Size = 3000 }, ErrLayout},
		{"selection refuses", func(s *server, o *Options) {
			o.Select = func(*manifest.Manifest) ([]string, error) { return nil, manifest.ErrNotForDevice }
		}, manifest.ErrNotForDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := newServer(t, p.Bytes)
			s.lo, s.hi = payloadRange(t, p, p.Full.Payload)
			dir := t.TempDir()
			o := opts(t, p, dir)
			tc.setup(s, &o)
			_, err := Fetch(context.Background(), &HTTP{URL: url}, o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			if s.sentIn != 0 && tc.want != ErrTooLong {
				t.Errorf("%d payload bytes sent before the refusal", s.sentIn)
			}
		})
	}
}

func TestRedirectToOtherScheme(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	}))
	defer ts.Close()
	p := storetest.Package(t, true)
	_, err := Fetch(context.Background(), &HTTP{URL: ts.URL}, opts(t, p, t.TempDir()))
	if !errors.Is(err, ErrRedirect) {
		t.Fatalf("Fetch = %v, want ErrRedirect", err)
	}
}

// TestTrickleTimesOut: a server that sends a byte now and then is given up
// on at the request's deadline, not waited for.
func TestTrickleTimesOut(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", "bytes 0-511/100000")
		w.WriteHeader(http.StatusPartialContent)
		for i := 0; i < 512; i++ {
			if _, err := w.Write([]byte{0}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer ts.Close()
	h := &HTTP{URL: ts.URL, MinRate: 1 << 20, Slack: 200 * time.Millisecond}
	_, err := h.Fetch(context.Background(), make([]byte, 512), 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want a deadline error", err)
	}
}

func TestLoadHeldTornAndGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.have")
	// Records written by keep itself.
	f, _ := os.Create(path)
	fe := &fetcher{}
	data, _ := os.Create(path + ".data")
	for _, j := range []int64{0, 2, 3} {
		if err := fe.keep(data, f, []byte{1}, j, 1); err != nil {
			t.Fatal(err)
		}
	}
	f.Write([]byte{9, 9, 9}) // a torn record
	f.Close()
	held, err := loadHeld(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, true, false}; !equalBools(held, want) {
		t.Errorf("held = %v, want %v", held, want)
	}
	// A record naming a block beyond the payload ends the record too.
	held, _ = loadHeld(path, 3)
	if want := []bool{true, false, true}; !equalBools(held, want) {
		t.Errorf("held (3 blocks) = %v, want %v", held, want)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
