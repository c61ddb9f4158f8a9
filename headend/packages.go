package headend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"meterupd/shadow"
)

// Packages is the package directory the head-end serves: over HTTP with
// Range (GET /pkg/<name>) and in-band as block streams named after the
// file. A name is 1 to 64 characters of [A-Za-z0-9._-] (a stream name of
// docs/mqtt.md), so no request reaches outside the directory.
type Packages struct {
	Dir string

	mu   sync.Mutex
	sums map[string]statCache // name → digest and size, while the file is unchanged
}

type statCache struct {
	p     Package
	mtime time.Time
}

// checkName refuses a package name that is not a stream name.
func checkName(name string) error {
	if err := checkNodeID(name); err != nil || name == "." || name == ".." {
		return fmt.Errorf("%w: package name %q", ErrBadInput, name)
	}
	return nil
}

// Open opens the package called name.
func (p *Packages) Open(name string) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(p.Dir, name))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("%w: package %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("headend: package %s: %w", name, err)
	}
	return f, nil
}

// Stat returns the digest and size of package name.
func (p *Packages) Stat(name string) (Package, error) {
	f, err := p.Open(name)
	if err != nil {
		return Package{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Package{}, fmt.Errorf("headend: package %s: %w", name, err)
	}
	p.mu.Lock()
	if s, ok := p.sums[name]; ok && s.p.Size == fi.Size() && s.mtime.Equal(fi.ModTime()) {
		p.mu.Unlock()
		return s.p, nil
	}
	p.mu.Unlock()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Package{}, fmt.Errorf("headend: package %s: %w", name, err)
	}
	s := Package{Key: name, Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	p.mu.Lock()
	if p.sums == nil {
		p.sums = map[string]statCache{}
	}
	p.sums[name] = statCache{s, fi.ModTime()}
	p.mu.Unlock()
	return s, nil
}

// ServeHTTP serves GET /pkg/<name> with Range (206 for a range asked for).
func (p *Packages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, err := p.Open(name)
	if err != nil {
		http.Error(w, "no such package", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "no such package", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// Streamer answers block-stream requests (state/<id>/stream/get) with the
// blocks asked for, and only those, on state/<id>/stream/data.
//
// Pacing: one answer per node at a time (a request that comes while the
// node's last answer is still going out is dropped: the node asks again
// after a quiet spell for what it still lacks), so at most one window
// (64 blocks) is ever queued for a node, below mosquitto's
// max_queued_messages; and at most Workers nodes are answered at once, each
// publish waiting for the broker's PUBACK, so the broker is never handed
// more than Workers messages at a time.
type Streamer struct {
	Packages *Packages
	Link     Link
	Log      *slog.Logger
	Shared   string
	Workers  int // nodes answered at once; 0: 16

	once sync.Once
	sem  chan struct{}
	mu   sync.Mutex
	busy map[string]bool
}

// Start subscribes to the nodes' stream requests.
func (s *Streamer) Start(ctx context.Context) error {
	f := "state/+/stream/get"
	if s.Shared != "" {
		f = "$share/" + s.Shared + "/" + f
	}
	return s.Link.Subscribe(f, func(topic string, b []byte) {
		if id := nodeOf(topic, "stream/get"); id != "" {
			s.Handle(ctx, id, b)
		}
	})
}

// Handle answers one request of node. It reports how many blocks it sent.
func (s *Streamer) Handle(ctx context.Context, node string, b []byte) int {
	s.once.Do(func() {
		w := s.Workers
		if w <= 0 {
			w = 16
		}
		s.sem = make(chan struct{}, w)
		s.busy = map[string]bool{}
	})
	g, err := shadow.ParseStreamGet(b)
	if err != nil {
		s.Log.Warn("stream request refused", slog.String("node", node), slog.Any("err", err))
		return 0
	}
	s.mu.Lock()
	if s.busy[node] {
		s.mu.Unlock()
		return 0
	}
	s.busy[node] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.busy, node)
		s.mu.Unlock()
	}()
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return 0
	}
	f, err := s.Packages.Open(g.Stream)
	if err != nil {
		s.Log.Warn("stream request refused", slog.String("node", node), slog.Any("err", err))
		return 0
	}
	defer f.Close()
	buf := make([]byte, g.BlockSize) // at most shadow.MaxStreamBlock
	sent := 0
	for i := 0; i < len(g.Bitmap)*8; i++ {
		if !g.Wants(i) {
			continue
		}
		off := g.Offset + int64(i)*int64(g.BlockSize)
		n, err := f.ReadAt(buf, off)
		if n == 0 {
			if err != nil && err != io.EOF {
				s.Log.Warn("stream read", slog.String("stream", g.Stream), slog.Any("err", err))
			}
			break // past the end: nothing more to send
		}
		msg, err := shadow.StreamData{Stream: g.Stream, Offset: off, Data: buf[:n]}.Encode()
		if err != nil {
			s.Log.Error("stream encode", slog.Any("err", err))
			return sent
		}
		if err := s.Link.Publish(ctx, topicData(node), false, msg); err != nil {
			s.Log.Warn("stream block not sent", slog.String("node", node), slog.Any("err", err))
			return sent
		}
		sent++
	}
	return sent
}
