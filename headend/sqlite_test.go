package headend

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestSQLiteOpenWhileServing: the operator's commands (`headend nodes`,
// `campaign status`) open the SQLite file while `headend serve` writes to
// it. Opening writes too (the schema, the epoch once): it waits for the
// writer (busy timeout) instead of failing with "database is locked",
// which a deferred transaction that reads first and writes second does
// under WAL (SQLITE_BUSY_SNAPSHOT, no wait).
func TestSQLiteOpenWhileServing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "headend.db")
	s := openStore(t, path, t0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100000 {
			select {
			case <-stop:
				return
			default:
			}
			r, raw := report(uint64(i+1), "installing", "1.0", 0)
			if _, err := s.RecordReport(ctx, fmt.Sprintf("n%d", i%20), uint64(i+1), r, raw, t0); err != nil {
				t.Errorf("RecordReport: %v", err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := range 40 {
		s2, err := Open(ctx, path, time.Now)
		if err != nil {
			t.Fatalf("Open #%d while the server writes: %v", i, err)
		}
		if _, err := s2.Nodes(ctx); err != nil {
			t.Fatalf("Nodes #%d while the server writes: %v", i, err)
		}
		s2.Close()
	}
}
