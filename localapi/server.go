package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"meterupd/validate"
)

// Server serves a Handler on a listener.
type Server struct {
	Handler Handler
	// Agent is the daemon's version, sent in its hello.
	Agent  string
	Logger *slog.Logger
}

// Serve accepts clients until ctx ends, then closes ln, ends every
// connection and returns once their goroutines are done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c, log)
		}()
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("localapi: accept: %w", err)
}

// conn is one client connection. Lines to the client are written whole,
// one at a time (events come from the owner's goroutine).
type conn struct {
	c   net.Conn
	wmu sync.Mutex
	enc *json.Encoder
}

func (c *conn) send(l daemonLine) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.enc.Encode(l)
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &conn{c: nc, enc: json.NewEncoder(nc)}
	defer nc.Close()
	go func() {
		<-ctx.Done()
		nc.Close()
	}()
	lines := make(chan clientLine)
	go func() {
		// The reader: a client that leaves (or sends garbage) ends the
		// connection's context, which ends a streaming command; a command
		// already queued to the node still runs to its end.
		defer cancel()
		r := bufio.NewReaderSize(nc, 4096)
		for {
			b, err := readLine(r)
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					log.Debug("local client dropped", slog.Any("err", err))
				}
				return
			}
			var l clientLine
			if err := json.Unmarshal(b, &l); err != nil {
				c.send(daemonLine{Done: true, Error: &Error{Code: CodeBadRequest, Message: "not a JSON line: " + err.Error()}})
				return
			}
			select {
			case lines <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	first := true
	for {
		var l clientLine
		select {
		case l = <-lines:
		case <-ctx.Done():
			return
		}
		if first {
			first = false
			if l.Hello == nil || l.Hello.Proto < MinProto {
				c.send(daemonLine{Done: true, Error: &Error{Code: CodeBadRequest, Message: fmt.Sprintf("hello with proto >= %d expected first", MinProto)}})
				return
			}
			names := make([]string, len(Commands))
			for i, cmd := range Commands {
				names[i] = cmd.Name
			}
			if c.send(daemonLine{Hello: &Hello{Proto: min(Proto, l.Hello.Proto), MinProto: MinProto, Agent: s.Agent, Commands: names}}) != nil {
				return
			}
			continue
		}
		if l.Hello != nil {
			continue
		}
		s.handle(ctx, c, l.Request)
	}
}

func (s *Server) handle(ctx context.Context, c *conn, req Request) {
	if err := req.Check(); err != nil {
		c.send(daemonLine{ID: req.ID, Done: true, Error: wireError(err)})
		return
	}
	var mu sync.Mutex
	open := true
	emit := func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		if open {
			c.send(daemonLine{ID: req.ID, Event: &ev})
		}
	}
	res, err := s.Handler.Handle(ctx, req, emit)
	mu.Lock()
	open = false
	mu.Unlock()
	if err != nil {
		c.send(daemonLine{ID: req.ID, Done: true, Error: wireError(err)})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		c.send(daemonLine{ID: req.ID, Done: true, Error: &Error{Code: CodeRefused, Message: err.Error()}})
		return
	}
	c.send(daemonLine{ID: req.ID, Done: true, Result: b})
}

func wireError(err error) *Error { return AsError(err) }

// AsError is err as it travels on the wire: its sentence, a code, and the
// validation outcomes when err carries them (a Checks method).
func AsError(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	e := &Error{Code: CodeRefused, Message: err.Error()}
	if errors.Is(err, ErrStopping) {
		e.Code = CodeStopping
	}
	var ce interface{ Checks() []validate.Result }
	if errors.As(err, &ce) {
		e.Checks = ce.Checks()
	}
	return e
}

// readLine reads one line of at most MaxLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(b)+len(frag) > MaxLine {
			return nil, fmt.Errorf("localapi: line longer than %d bytes", MaxLine)
		}
		b = append(b, frag...)
		switch {
		case err == nil:
			return b, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(b) > 0:
			return b, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
