package mqttlink

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"meterupd/shadow"
	"meterupd/store"
	"meterupd/store/storetest"
)

// streamServer answers StreamGet requests from data, dropping a share of
// the blocks it sends, as a lossy radio link does.
type streamServer struct {
	data    []byte
	drop    float64
	rnd     *rand.Rand
	mu      sync.Mutex
	sent    int
	deliver func([]byte)
}

func (s *streamServer) publish(_ context.Context, msg []byte) error {
	g, err := shadow.ParseStreamGet(msg)
	if err != nil {
		return err
	}
	go func() {
		for i := 0; i < len(g.Bitmap)*8; i++ {
			if !g.Wants(i) {
				continue
			}
			off := g.Offset + int64(i*g.BlockSize)
			if off >= int64(len(s.data)) {
				continue
			}
			d := shadow.StreamData{Stream: g.Stream, Offset: off, Data: s.data[off:min(int64(len(s.data)), off+int64(g.BlockSize))]}
			b, _ := d.Encode()
			s.mu.Lock()
			s.sent += len(d.Data)
			lost := s.rnd.Float64() < s.drop
			s.mu.Unlock()
			if !lost {
				s.deliver(b)
			}
		}
	}()
	return nil
}

func TestStreamRemoteLossy(t *testing.T) {
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	srv := &streamServer{data: data, drop: 0.2, rnd: rand.New(rand.NewPCG(3, 4))}
	r := &StreamRemote{Stream: "pkg", BlockSize: 1024, Publish: srv.publish, Quiet: 50 * time.Millisecond, Rounds: 20}
	srv.deliver = r.Deliver
	p := make([]byte, 150_000)
	n, err := r.Fetch(context.Background(), p, 10_000)
	if err != nil || n != len(p) {
		t.Fatalf("Fetch = %d, %v", n, err)
	}
	if !bytes.Equal(p, data[10_000:160_000]) {
		t.Fatal("fetched bytes differ")
	}
	t.Logf("sent %d bytes for %d (%.2f×) at 20%% loss", srv.sent, len(p), float64(srv.sent)/float64(len(p)))
}

func TestStreamRemoteGivesUpWithPrefix(t *testing.T) {
	data := make([]byte, 10_000)
	srv := &streamServer{data: data, rnd: rand.New(rand.NewPCG(1, 1))}
	r := &StreamRemote{Stream: "pkg", BlockSize: 1024, Quiet: 20 * time.Millisecond, Rounds: 2}
	// Blocks 0–3 arrive, block 4 never does.
	r.Publish = func(ctx context.Context, msg []byte) error {
		g, _ := shadow.ParseStreamGet(msg)
		for i := 0; i < 10; i++ {
			if g.Wants(i) && i != 4 {
				b, _ := shadow.StreamData{Stream: "pkg", Offset: int64(i * 1024), Data: data[i*1024 : min(len(data), (i+1)*1024)]}.Encode()
				r.Deliver(b)
			}
		}
		return nil
	}
	_ = srv
	n, err := r.Fetch(context.Background(), make([]byte, 10_000), 0)
	if !errors.Is(err, ErrStreamTimeout) || n != 4*1024 {
		t.Fatalf("Fetch = %d, %v; want 4096 and ErrStreamTimeout", n, err)
	}
}

func TestStreamRemoteDropsForeignBlocks(t *testing.T) {
	r := &StreamRemote{Stream: "pkg", BlockSize: 512, Quiet: 20 * time.Millisecond, Rounds: 1}
	r.Publish = func(ctx context.Context, msg []byte) error {
		for _, d := range []shadow.StreamData{
			{Stream: "other", Offset: 0, Data: make([]byte, 512)},          // another stream
			{Stream: "pkg", Offset: 100, Data: make([]byte, 512)},          // misaligned
			{Stream: "pkg", Offset: 0, Data: make([]byte, 100)},            // short
			{Stream: "pkg", Offset: 1 << 20, Data: make([]byte, 512)},      // outside the range
			{Stream: "pkg", Offset: 0, Data: bytes.Repeat([]byte{9}, 512)}, // the one that counts
		} {
			b, _ := d.Encode()
			r.Deliver(b)
		}
		r.Deliver([]byte("garbage"))
		return nil
	}
	p := make([]byte, 512)
	n, err := r.Fetch(context.Background(), p, 0)
	if err != nil || n != 512 || p[0] != 9 {
		t.Fatalf("Fetch = %d, %v, p[0]=%d", n, err, p[0])
	}
}

// TestStoreOverLossyStream: a whole package through the store over the
// block stream at 20 % loss, with one block corrupted on the way: it
// arrives byte-exact, the corrupt block refused and asked for again.
func TestStoreOverLossyStream(t *testing.T) {
	p := storetest.Package(t, true)
	data := bytes.Clone(p.Bytes)
	i := bytes.Index(data, p.Payloads[p.Full.Payload])
	srv := &streamServer{data: data, drop: 0.2, rnd: rand.New(rand.NewPCG(5, 6))}
	corrupted := false
	r := &StreamRemote{Stream: "pkg-1", BlockSize: 1024, Quiet: 30 * time.Millisecond, Rounds: 30}
	srv.deliver = func(b []byte) {
		d, _ := shadow.ParseStreamData(b)
		if !corrupted && d.Offset <= int64(i+5000) && int64(i+5000) < d.Offset+int64(len(d.Data)) {
			corrupted = true
			d.Data = bytes.Clone(d.Data)
			d.Data[int64(i+5000)-d.Offset] ^= 1
			b, _ = d.Encode()
		}
		r.Deliver(b)
	}
	r.Publish = srv.publish
	res, err := store.Fetch(context.Background(), r, store.Options{Dir: t.TempDir(), Size: int64(len(data)), Keys: p.Keys})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range p.Payloads {
		got, err := os.ReadFile(res.Payloads[name])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("payload %s: %v", name, err)
		}
	}
	if !corrupted || res.Stats.BadBlocks != 1 {
		t.Fatalf("corrupted %v, bad blocks %d; want one refused", corrupted, res.Stats.BadBlocks)
	}
	t.Logf("stream sent %d bytes for a %d-byte package (%.2f×) at 20%% loss", srv.sent, len(data), float64(srv.sent)/float64(len(data)))
}
