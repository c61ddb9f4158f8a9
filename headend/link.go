package headend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Link is the head-end's MQTT connection: QoS 1 both ways.
type Link interface {
	// Publish sends payload on topic at QoS 1. It returns once the broker
	// took the message (its PUBACK, for an external broker), so a caller
	// that publishes one message after the other never has more in flight
	// than the link allows.
	Publish(ctx context.Context, topic string, retain bool, payload []byte) error
	// Subscribe calls h for each message on a topic matching filter. h may
	// be called from several goroutines at once.
	Subscribe(filter string, h func(topic string, payload []byte)) error
	Close() error
}

// ErrLink is a failure of the MQTT link.
var ErrLink = errors.New("headend: mqtt link")

// Embedded is the MQTT broker inside `headend serve` (mochi-mqtt), with the
// head-end as its inline client.
type Embedded struct {
	srv  *mqtt.Server
	addr net.Addr
	mu   sync.Mutex
	subs int
}

// NewEmbedded starts a broker listening on addr (e.g. 127.0.0.1:1883),
// with TLS when tc is not nil.
//
// Retained desired documents and queued QoS 1 messages never expire
// (MaximumMessageExpiryInterval 0): a campaign may run for days and a node
// may be away for a week. A node's queue is bounded by
// MaximumClientWritesPending; the stream server never asks for more than a
// window per node.
func NewEmbedded(addr string, tc *tls.Config, log *slog.Logger) (*Embedded, error) {
	opts := &mqtt.Options{InlineClient: true, Logger: log.With(slog.String("part", "broker"))}
	opts.Capabilities = mqtt.NewDefaultServerCapabilities()
	opts.Capabilities.MaximumMessageExpiryInterval = 0
	srv := mqtt.New(opts)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("%w: broker: %v", ErrLink, err)
	}
	// Listen here, so the caller learns a :0 port before Serve.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: broker: %v", ErrLink, err)
	}
	e := &Embedded{srv: srv, addr: ln.Addr()}
	ln.Close()
	l := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "t1", Address: e.addr.String(), TLSConfig: tc})
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("%w: broker: %v", ErrLink, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("%w: broker: %v", ErrLink, err)
	}
	return e, nil
}

// Addr is the address the broker listens on.
func (e *Embedded) Addr() net.Addr { return e.addr }

func (e *Embedded) Publish(ctx context.Context, topic string, retain bool, payload []byte) error {
	if err := e.srv.Publish(topic, payload, retain, 1); err != nil {
		return fmt.Errorf("%w: publish %s: %v", ErrLink, topic, err)
	}
	return nil
}

func (e *Embedded) Subscribe(filter string, h func(topic string, payload []byte)) error {
	e.mu.Lock()
	e.subs++
	id := e.subs
	e.mu.Unlock()
	// Shared-subscription prefixes mean nothing inside one process.
	if strings.HasPrefix(filter, "$share/") {
		if parts := strings.SplitN(filter, "/", 3); len(parts) == 3 {
			filter = parts[2]
		}
	}
	err := e.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		h(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("%w: subscribe %s: %v", ErrLink, filter, err)
	}
	return nil
}

func (e *Embedded) Close() error { return e.srv.Close() }

// External is a client connection to an external broker (mosquitto).
type External struct {
	c       paho.Client
	timeout time.Duration
	mu      sync.Mutex
	subs    map[string]paho.MessageHandler // re-made on reconnect
}

// DialOptions configure an external broker connection.
type DialOptions struct {
	URL      string // tcp://host:port, ssl://host:port or tls://host:port
	ClientID string
	TLS      *tls.Config
	Username string
	Password string
	// CleanSession: instances sharing a fleet through a shared
	// subscription use a clean session, so a stopped instance's session
	// ends with it and the broker gives its share to the others instead
	// of queueing it for an instance that may never come back.
	CleanSession bool
}

// Dial connects to an external broker. Without CleanSession the session is
// persistent, so messages for the head-end published while it reconnects
// are kept by the broker.
func Dial(ctx context.Context, o DialOptions, log *slog.Logger) (*External, error) {
	x := &External{timeout: 30 * time.Second, subs: map[string]paho.MessageHandler{}}
	opts := paho.NewClientOptions().AddBroker(o.URL).SetClientID(o.ClientID).
		SetCleanSession(o.CleanSession).SetAutoReconnect(true).SetOrderMatters(false).
		SetConnectRetry(true).SetMaxReconnectInterval(10 * time.Second).
		SetUsername(o.Username).SetPassword(o.Password)
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		x.mu.Lock()
		defer x.mu.Unlock()
		for f, h := range x.subs {
			c.Subscribe(f, 1, h) // completes asynchronously; logged on failure below
		}
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		log.Warn("mqtt connection lost", slog.Any("err", err))
	})
	x.c = paho.NewClient(opts)
	if err := wait(ctx, x.c.Connect(), x.timeout); err != nil {
		x.c.Disconnect(0)
		return nil, fmt.Errorf("%w: connect %s: %v", ErrLink, o.URL, err)
	}
	return x, nil
}

func wait(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("timed out")
	}
}

func (x *External) Publish(ctx context.Context, topic string, retain bool, payload []byte) error {
	if err := wait(ctx, x.c.Publish(topic, 1, retain, payload), x.timeout); err != nil {
		return fmt.Errorf("%w: publish %s: %v", ErrLink, topic, err)
	}
	return nil
}

func (x *External) Subscribe(filter string, h func(topic string, payload []byte)) error {
	mh := func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) }
	x.mu.Lock()
	x.subs[filter] = mh
	x.mu.Unlock()
	if err := wait(context.Background(), x.c.Subscribe(filter, 1, mh), x.timeout); err != nil {
		return fmt.Errorf("%w: subscribe %s: %v", ErrLink, filter, err)
	}
	return nil
}

// Close disconnects, giving in-flight work a moment.
func (x *External) Close() error {
	x.c.Disconnect(250)
	return nil
}
