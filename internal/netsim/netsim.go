// Package netsim is a slow, lossy radio link for tests and benchmarks: TCP
// proxies on 127.0.0.1 that share one byte rate (a radio carries one
// stream of bytes at a time), count every byte each way, and drop their
// connections when told to or at random (seeded), as coverage does.
package netsim

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Link is the shared radio: its rate and its counters.
type Link struct {
	// Rate is bytes per second over all proxies of the link, both ways.
	Rate int
	// DropEvery, when > 0, drops all connections after about that many
	// bytes (uniformly 0.5–1.5×, from the seeded source).
	DropEvery int64
	rnd       *rand.Rand

	mu       sync.Mutex
	next     time.Time // when the radio is free again
	sinceCut int64
	cutAt    int64
	conns    map[net.Conn]struct{}

	Up, Down atomic.Int64 // bytes node → server, server → node
	Drops    atomic.Int64
}

// New returns a link of rate bytes per second; seed makes drops repeatable.
func New(rate int, dropEvery int64, seed uint64) *Link {
	l := &Link{Rate: rate, DropEvery: dropEvery, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), conns: map[net.Conn]struct{}{}}
	l.cutAt = l.nextCut()
	return l
}

func (l *Link) nextCut() int64 {
	if l.DropEvery <= 0 {
		return -1
	}
	return int64(float64(l.DropEvery) * (0.5 + l.rnd.Float64()))
}

// airtime waits until n bytes have had their turn on the radio, and says
// whether the link dropped in the meantime.
func (l *Link) airtime(n int) (drop bool) {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(n) * time.Second / time.Duration(l.Rate))
	wait := l.next.Sub(now)
	l.sinceCut += int64(n)
	if l.cutAt >= 0 && l.sinceCut >= l.cutAt {
		l.sinceCut, l.cutAt, drop = 0, l.nextCut(), true
	}
	l.mu.Unlock()
	time.Sleep(wait)
	return drop
}

// DropAll closes every connection of the link now.
func (l *Link) DropAll() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	l.Drops.Add(1)
}

// Proxy listens on 127.0.0.1 and forwards to target over the link.
// It returns the address to dial instead of target.
func (l *Link) Proxy(target string) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns[c], l.conns[s] = struct{}{}, struct{}{}
			l.mu.Unlock()
			go l.pipe(c, s, &l.Up)
			go l.pipe(s, c, &l.Down)
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }
}

func (l *Link) pipe(dst, src net.Conn, count *atomic.Int64) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 512)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			drop := l.airtime(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			count.Add(int64(n))
			if drop {
				l.DropAll()
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}
