// Package mqttc is a minimal MQTT 3.1.1 client: what the node's link to
// the head-end needs and nothing more (no websocket, no QoS 2, no
// persistence), so that the meter binary links no net/http.
//
// The caller dials the connection (plain TCP or crypto/tls) and hands it to
// Connect. The client never reconnects: when the connection ends, Done is
// closed and Err says why; the caller dials again. Outgoing QoS 1 messages
// not acknowledged before a connection ended are the caller's to send again
// (with clean session false the broker keeps its own side); Publish returns
// an error for them.
package mqttc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Message is a will.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Options of a connection.
type Options struct {
	ClientID     string
	CleanSession bool
	// KeepAlive is the longest silence; a PINGREQ goes out every
	// KeepAlive, and a PINGRESP not back before the next one ends the
	// connection (ErrPingTimeout). Zero: no keep-alive.
	KeepAlive time.Duration
	Will      *Message
	Username  string
	Password  string
	// MaxPacket bounds a packet from the broker (default DefaultMaxPacket).
	MaxPacket int
	// Queue is how many incoming messages wait for Handler (default 64).
	// When it is full the read loop waits at most HandlerStall (default
	// 30 s), then ends the connection with ErrHandlerStalled: the broker
	// redelivers the unacknowledged QoS 1 message on the next session.
	Queue        int
	HandlerStall time.Duration
	// Handler receives every incoming message, one at a time, in order.
	Handler func(topic string, payload []byte)
	// WriteTimeout bounds one packet's write (default 30 s).
	WriteTimeout time.Duration
}

// Errors of the client.
var (
	ErrRefused        = errors.New("mqttc: connection refused")
	ErrPingTimeout    = errors.New("mqttc: no PINGRESP: the broker is gone")
	ErrClosed         = errors.New("mqttc: connection closed")
	ErrSubscribe      = errors.New("mqttc: subscription refused")
	ErrHandlerStalled = errors.New("mqttc: message handler stalled")
)

// RefusedError is a CONNACK with a return code other than 0.
type RefusedError struct{ Code byte }

var connackText = [...]string{1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable", 4: "bad user name or password", 5: "not authorized"}

func (e *RefusedError) Error() string {
	s := "unknown return code"
	if int(e.Code) < len(connackText) {
		s = connackText[e.Code]
	}
	return fmt.Sprintf("mqttc: connection refused: %s (%d)", s, e.Code)
}
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Client is one MQTT session on one connection.
type Client struct {
	conn net.Conn
	o    Options
	r    *bufio.Reader

	wmu sync.Mutex // one packet at a time on the wire

	mu      sync.Mutex
	nextID  uint16
	pending map[uint16]chan []byte // PUBACK (nil) / SUBACK (codes)
	pingOut bool
	err     error
	done    chan struct{}
	queue   chan publish
}

// Connect sends CONNECT on conn and waits for CONNACK. On any error conn
// is closed.
func Connect(ctx context.Context, conn net.Conn, o Options) (*Client, error) {
	if o.MaxPacket <= 0 {
		o.MaxPacket = DefaultMaxPacket
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.HandlerStall <= 0 {
		o.HandlerStall = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	ka := o.KeepAlive / time.Second
	if ka > 65535 || (o.KeepAlive > 0 && ka == 0) {
		conn.Close()
		return nil, fmt.Errorf("mqttc: keep-alive %v out of range (1 s to 65535 s)", o.KeepAlive)
	}
	pkt, err := connectPacket(o, uint16(ka))
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &Client{conn: conn, o: o, r: bufio.NewReader(conn), pending: map[uint16]chan []byte{},
		done: make(chan struct{}), queue: make(chan publish, o.Queue)}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.write(pkt); err != nil {
		conn.Close()
		return nil, ctxErr(ctx, err)
	}
	p, err := readPacket(c.r, 4)
	if err != nil {
		conn.Close()
		return nil, ctxErr(ctx, fmt.Errorf("mqttc: CONNACK: %w", err))
	}
	code, err := p.parseConnack()
	if err == nil && code != 0 {
		err = &RefusedError{Code: code}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	conn.SetDeadline(time.Time{})
	go c.readLoop()
	go c.dispatch()
	if o.KeepAlive > 0 {
		go c.keepAlive()
	}
	return c, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func connectPacket(o Options, ka uint16) ([]byte, error) {
	for _, s := range [][2]string{{"client id", o.ClientID}, {"user name", o.Username}, {"password", o.Password}} {
		if err := checkString(s[0], s[1]); err != nil {
			return nil, err
		}
	}
	var flags byte
	if o.CleanSession {
		flags |= 0x02
	}
	if w := o.Will; w != nil {
		if err := checkString("will topic", w.Topic); err != nil {
			return nil, err
		}
		if len(w.Payload) > 65535 || w.QoS > 1 || w.Topic == "" {
			return nil, errors.New("mqttc: will: empty topic, payload over 65535 bytes or QoS over 1")
		}
		flags |= 0x04 | w.QoS<<3
		if w.Retain {
			flags |= 0x20
		}
	}
	if o.Username != "" {
		flags |= 0x80
		if o.Password != "" {
			flags |= 0x40
		}
	}
	var e encoder
	e.string("MQTT")
	e.byte1(4)
	e.byte1(flags)
	e.u16(ka)
	e.string(o.ClientID)
	if w := o.Will; w != nil {
		e.string(w.Topic)
		e.bytes(w.Payload)
	}
	if o.Username != "" {
		e.string(o.Username)
		if o.Password != "" {
			e.string(o.Password)
		}
	}
	return frame(typeConnect<<4, e.b)
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it has not).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// IsConnected reports whether the connection is up.
func (c *Client) IsConnected() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// close ends the connection for err (the first reason wins).
func (c *Client) close(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.pending = map[uint16]chan []byte{}
	close(c.done)
	c.mu.Unlock()
	c.conn.Close()
}

func (c *Client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
	_, err := c.conn.Write(b)
	return err
}

// send writes a packet; a failed write ends the connection.
func (c *Client) send(b []byte) error {
	if err := c.write(b); err != nil {
		c.close(fmt.Errorf("mqttc: write: %w", err))
		return c.Err()
	}
	return nil
}

// Disconnect sends DISCONNECT and closes the connection: the broker
// discards the will.
func (c *Client) Disconnect() {
	if c.IsConnected() {
		c.write([]byte{typeDisconnect << 4, 0})
	}
	c.close(ErrClosed)
}

// Subscribe subscribes to topics (filter → QoS, at most 1) and waits for
// SUBACK. A filter the broker refuses (0x80) is an ErrSubscribe.
func (c *Client) Subscribe(ctx context.Context, topics map[string]byte) error {
	if len(topics) == 0 {
		return nil
	}
	id, ch, err := c.reserve()
	if err != nil {
		return err
	}
	var e encoder
	e.u16(id)
	order := make([]string, 0, len(topics))
	for f, q := range topics {
		if err := checkString("topic filter", f); err != nil || q > 1 || f == "" {
			c.release(id)
			return fmt.Errorf("mqttc: subscribe %q at QoS %d: not supported", f, q)
		}
		e.string(f)
		e.byte1(q)
		order = append(order, f)
	}
	b, err := frame(typeSubscribe<<4|0x02, e.b)
	if err == nil {
		err = c.send(b)
	}
	if err != nil {
		c.release(id)
		return err
	}
	codes, err := c.wait(ctx, id, ch)
	if err != nil {
		return err
	}
	if len(codes) != len(order) {
		c.close(fmt.Errorf("%w: SUBACK with %d codes for %d filters", ErrMalformed, len(codes), len(order)))
		return c.Err()
	}
	for i, code := range codes {
		if code > 1 {
			return fmt.Errorf("%w: %q (return code %#x)", ErrSubscribe, order[i], code)
		}
	}
	return nil
}

// Publish sends a message. At QoS 1 it waits for PUBACK until ctx ends; a
// connection that ends first is an error, and sending the message again
// (with DUP, on the next connection) is the caller's choice.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	if qos > 1 || topic == "" {
		return fmt.Errorf("mqttc: publish to %q at QoS %d: not supported", topic, qos)
	}
	if err := checkString("topic", topic); err != nil {
		return err
	}
	first := byte(typePublish<<4) | qos<<1
	if retain {
		first |= 1
	}
	var e encoder
	e.b = make([]byte, 0, 2+len(topic)+2+len(payload))
	e.string(topic)
	if qos == 0 {
		e.b = append(e.b, payload...)
		b, err := frame(first, e.b)
		if err != nil {
			return err
		}
		return c.send(b)
	}
	id, ch, err := c.reserve()
	if err != nil {
		return err
	}
	e.u16(id)
	e.b = append(e.b, payload...)
	b, err := frame(first, e.b)
	if err == nil {
		err = c.send(b)
	}
	if err != nil {
		c.release(id)
		return err
	}
	_, err = c.wait(ctx, id, ch)
	return err
}

// reserve takes a free packet identifier.
func (c *Client) reserve() (uint16, chan []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, nil, c.err
	}
	for range 65536 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.pending[c.nextID]; !busy {
			ch := make(chan []byte, 1)
			c.pending[c.nextID] = ch
			return c.nextID, ch, nil
		}
	}
	return 0, nil, errors.New("mqttc: 65535 messages in flight")
}

func (c *Client) release(id uint16) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) wait(ctx context.Context, id uint16, ch chan []byte) ([]byte, error) {
	select {
	case b := <-ch:
		return b, nil
	case <-c.done:
		return nil, c.Err()
	case <-ctx.Done():
		c.release(id)
		return nil, ctx.Err()
	}
}

// ack hands a PUBACK/SUBACK to its waiter; one nobody waits for (timed
// out, or never asked) is dropped.
func (c *Client) ack(typ byte, p packet) error {
	id, codes, err := p.parseID()
	if err != nil {
		return err
	}
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- codes
	}
	return nil
}

func (c *Client) readLoop() {
	defer close(c.queue)
	for {
		p, err := readPacket(c.r, c.o.MaxPacket)
		if err != nil {
			c.close(fmt.Errorf("mqttc: read: %w", err))
			return
		}
		switch p.typ {
		case typePublish:
			m, err := p.parsePublish()
			if err != nil {
				c.close(err)
				return
			}
			t := time.NewTimer(c.o.HandlerStall)
			select {
			case c.queue <- m:
				t.Stop()
			case <-c.done:
				t.Stop()
				return
			case <-t.C:
				c.close(fmt.Errorf("%w: %d messages queued for %v", ErrHandlerStalled, c.o.Queue, c.o.HandlerStall))
				return
			}
			if m.qos == 1 {
				if c.send([]byte{typePuback << 4, 2, byte(m.id >> 8), byte(m.id)}) != nil {
					return
				}
			}
		case typePuback, typeSuback:
			if err := c.ack(p.typ, p); err != nil {
				c.close(err)
				return
			}
		case typePingresp:
			c.mu.Lock()
			c.pingOut = false
			c.mu.Unlock()
		default:
			c.close(fmt.Errorf("%w: unexpected packet type %d", ErrMalformed, p.typ))
			return
		}
	}
}

// dispatch runs the handler for each queued message.
func (c *Client) dispatch() {
	for m := range c.queue {
		if c.o.Handler != nil {
			c.o.Handler(m.topic, m.payload)
		}
	}
}

func (c *Client) keepAlive() {
	t := time.NewTicker(c.o.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		missed := c.pingOut
		c.pingOut = true
		c.mu.Unlock()
		if missed {
			c.close(fmt.Errorf("%w (keep-alive %v)", ErrPingTimeout, c.o.KeepAlive))
			return
		}
		if c.send([]byte{typePingreq << 4, 0}) != nil {
			return
		}
	}
}
