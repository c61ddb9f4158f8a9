package modem

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// onceReader hands out its data in one Read, then blocks until closed.
type onceReader struct {
	mu   sync.Mutex
	data []byte
	shut chan struct{}
}

func (r *onceReader) Read(b []byte) (int, error) {
	r.mu.Lock()
	if len(r.data) > 0 {
		n := copy(b, r.data)
		r.data = r.data[n:]
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	<-r.shut
	return 0, io.EOF
}
func (r *onceReader) Write(b []byte) (int, error) { return len(b), nil }
func (r *onceReader) Close() error                { close(r.shut); return nil }

// The module's last acknowledgement and its +QFUPL line can arrive in
// one read; the ack must still be seen first. (CI once caught a reader
// that took them from two channels and saw the line first.)
func TestRawSessionAckBeforeLineInOneRead(t *testing.T) {
	for i := 0; i < 200; i++ {
		r := &onceReader{data: []byte("A+QFUPL: 2048,5cdf\r\nOK\r\n"), shut: make(chan struct{})}
		s := newRawSession(r, realClock{})
		s.ackMode.Store(true)
		// Let the reader take the whole buffer before anyone waits.
		deadline := time.Now().Add(5 * time.Second)
		for len(s.events) < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := s.waitAck(context.Background(), 5*time.Second); err != nil {
			s.close()
			t.Fatalf("run %d: waitAck = %v; want the ack that came first", i, err)
		}
		s.close()
	}
}
