package mqttlink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"meterupd/shadow"
)

// StreamRemote fetches a package over the in-band MQTT block stream
// (shadow.StreamGet requests, shadow.StreamData answers): the store's
// Remote for a node with no IP route to a file server. It asks for the
// blocks of a range with one bitmap request, keeps what arrives, asks again
// for the blocks still missing after a quiet spell, and gives up after a
// few rounds with the prefix it has (the store keeps every whole block).
type StreamRemote struct {
	Stream    string
	BlockSize int // bytes per data message; default 1024, at most shadow.MaxStreamBlock
	// Publish sends an encoded StreamGet to the head-end.
	Publish func(ctx context.Context, get []byte) error
	// Quiet is how long a round waits for the next block before asking
	// again for what is missing (default 30 s: a 1 KiB block takes 3.4 s
	// at 2.4 kbit/s).
	Quiet time.Duration
	// Rounds bounds the requests for one range (default 4).
	Rounds int

	mu   sync.Mutex
	want *pending
}

// pending is the range being fetched.
type pending struct {
	bs     int
	off    int64
	p      []byte
	got    []bool
	left   int
	arrive chan struct{}
}

// ErrStreamTimeout is a range the head-end did not complete.
var ErrStreamTimeout = errors.New("mqttlink: stream blocks did not arrive")

func (s *StreamRemote) bs() int {
	if s.BlockSize <= 0 {
		return 1024
	}
	return min(s.BlockSize, shadow.MaxStreamBlock)
}

// Fetch implements store.Remote.
func (s *StreamRemote) Fetch(ctx context.Context, p []byte, off int64) (int, error) {
	bs := s.bs()
	blocks := (len(p) + bs - 1) / bs
	if blocks > shadow.MaxStreamWindow {
		// Larger ranges go in several windows.
		n := 0
		for n < len(p) {
			k, err := s.Fetch(ctx, p[n:min(len(p), n+shadow.MaxStreamWindow*bs)], off+int64(n))
			n += k
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	// A short range (a 512-byte tar header) is asked for as one block
	// of its own size, so no airtime goes on bytes nobody needs.
	bs = min(bs, len(p))
	blocks = (len(p) + bs - 1) / bs
	pd := &pending{bs: bs, off: off, p: p, got: make([]bool, blocks), left: blocks, arrive: make(chan struct{}, 1)}
	s.mu.Lock()
	s.want = pd
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.want = nil
		s.mu.Unlock()
	}()
	quiet, rounds := s.Quiet, s.Rounds
	if quiet <= 0 {
		quiet = 30 * time.Second
	}
	if rounds <= 0 {
		rounds = 4
	}
	// asked marks the blocks whose request reached the broker: on a
	// persistent session the broker keeps their answers through a lost
	// link, so they are asked for again only after a quiet spell in
	// which nothing came (lost for good: a broker restart, a dropped
	// message).
	asked := make([]bool, blocks)
	reask := false
	for round := 0; round < rounds; round++ {
		g := shadow.StreamGet{Stream: s.Stream, Offset: off, BlockSize: pd.bs}
		var want []int
		s.mu.Lock()
		for i, ok := range pd.got {
			if !ok && (!asked[i] || reask) {
				g.Want(i)
				want = append(want, i)
			}
		}
		s.mu.Unlock()
		reask = false
		if len(want) > 0 {
			msg, err := g.Encode()
			if err != nil {
				return 0, err
			}
			err = s.Publish(ctx, msg)
			if err != nil && ctx.Err() != nil {
				return s.prefix(pd), err
			}
			if err == nil {
				for _, i := range want {
					asked[i] = true
				}
			}
		}
		t := time.NewTimer(quiet)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return s.prefix(pd), ctx.Err()
			case <-t.C:
				// Quiet: ask again for what is missing (and for what
				// could not be asked while the link was down).
				reask = true
				break wait
			case <-pd.arrive:
				s.mu.Lock()
				left := pd.left
				s.mu.Unlock()
				if left == 0 {
					t.Stop()
					return len(p), nil
				}
				if !t.Stop() {
					<-t.C
				}
				t.Reset(quiet)
			}
		}
	}
	return s.prefix(pd), fmt.Errorf("%w: %d of %d blocks at offset %d after %d requests", ErrStreamTimeout, blocks-pd.left, blocks, off, rounds)
}

// prefix is how many bytes from the start of the range have arrived.
func (s *StreamRemote) prefix(pd *pending) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ok := range pd.got {
		if !ok {
			return i * pd.bs
		}
	}
	return len(pd.p)
}

// Deliver takes a message from state/<id>/stream/data. Blocks of another
// stream or range, of the wrong length, or already held are dropped.
func (s *StreamRemote) Deliver(msg []byte) {
	d, err := shadow.ParseStreamData(msg)
	if err != nil || d.Stream != s.Stream {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pd := s.want
	if pd == nil || d.Offset < pd.off {
		return
	}
	bs := int64(pd.bs)
	rel := d.Offset - pd.off
	if rel%bs != 0 || rel/bs >= int64(len(pd.got)) {
		return
	}
	i := int(rel / bs)
	want := min(bs, int64(len(pd.p))-rel)
	// A whole block is BlockSize bytes; the range may end inside the
	// last one (the head-end sends it whole) and the package's end may
	// cut it short (the head-end sends what there is).
	if int64(len(d.Data)) < want || int64(len(d.Data)) > bs || pd.got[i] {
		return
	}
	copy(pd.p[rel:], d.Data[:want])
	pd.got[i] = true
	pd.left--
	select {
	case pd.arrive <- struct{}{}:
	default:
	}
}
