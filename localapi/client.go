package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
)

// Client is a connection to the daemon.
type Client struct {
	c     net.Conn
	r     *bufio.Reader
	hello Hello
	mu    sync.Mutex // one call at a time
	next  uint64
}

// Dial connects to the daemon at path and exchanges hellos. It returns an
// error wrapping ErrNoDaemon when no daemon listens there.
func Dial(ctx context.Context, path, client string) (*Client, error) {
	c, err := dial(path)
	if err != nil {
		return nil, err
	}
	cl := &Client{c: c, r: bufio.NewReaderSize(c, 4096)}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := json.NewEncoder(c).Encode(clientLine{Hello: &Hello{Proto: Proto, Client: client}}); err != nil {
		c.Close()
		return nil, fmt.Errorf("localapi: hello: %w", err)
	}
	l, err := cl.read()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("localapi: hello: %w", err)
	}
	if l.Error != nil {
		c.Close()
		return nil, l.Error
	}
	if l.Hello == nil || l.Hello.Proto < MinProto {
		c.Close()
		return nil, fmt.Errorf("localapi: the daemon speaks no protocol this client knows")
	}
	cl.hello = *l.Hello
	return cl, nil
}

// Hello is the daemon's hello.
func (cl *Client) Hello() Hello { return cl.hello }

// Close ends the connection.
func (cl *Client) Close() error { return cl.c.Close() }

func (cl *Client) read() (daemonLine, error) {
	b, err := readLine(cl.r)
	if err != nil {
		return daemonLine{}, err
	}
	var l daemonLine
	if err := json.Unmarshal(b, &l); err != nil {
		return daemonLine{}, fmt.Errorf("localapi: bad line from the daemon: %w", err)
	}
	return l, nil
}

// Call sends req, passes the events to emit (may be nil) and decodes the
// result into out (may be nil). A refusal is returned as *Error. Ending
// ctx closes the connection (the daemon still finishes a queued command).
func (cl *Client) Call(ctx context.Context, req Request, emit func(Event), out any) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.next++
	req.ID = cl.next
	stop := context.AfterFunc(ctx, func() { cl.c.Close() })
	defer stop()
	if err := json.NewEncoder(cl.c).Encode(clientLine{Request: req}); err != nil {
		return cl.lost(ctx, err)
	}
	for {
		l, err := cl.read()
		if err != nil {
			return cl.lost(ctx, err)
		}
		if l.ID != req.ID && l.ID != 0 {
			continue
		}
		if l.Event != nil && emit != nil {
			emit(*l.Event)
		}
		if !l.Done {
			continue
		}
		if l.Error != nil {
			return l.Error
		}
		if out != nil && len(l.Result) > 0 {
			return json.Unmarshal(l.Result, out)
		}
		return nil
	}
}

func (cl *Client) lost(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: the connection closed (%v)", ErrStopping, err)
}
