package mqttc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Control packet types (MQTT 3.1.1 §2.2.1).
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typeSubscribe  = 8
	typeSuback     = 9
	typePingreq    = 12
	typePingresp   = 13
	typeDisconnect = 14
)

// DefaultMaxPacket bounds a packet from the broker (fixed header excluded).
const DefaultMaxPacket = 256 << 10

// Errors of the packet layer.
var (
	// ErrMalformed is a packet that breaks MQTT 3.1.1: a hostile or
	// broken broker. The connection is closed.
	ErrMalformed = errors.New("mqttc: malformed packet")
	// ErrTooLarge is a packet over the maximum size. The connection is
	// closed before its body is read, so nothing is allocated for it.
	ErrTooLarge = errors.New("mqttc: packet too large")
)

// packet is one control packet as read: the first byte split in type and
// flags, and the variable header and payload.
type packet struct {
	typ, flags byte
	body       []byte
}

// readPacket reads one packet; a remaining length over max is refused
// before anything is allocated for it.
func readPacket(r *bufio.Reader, max int) (packet, error) {
	b, err := r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return packet{}, fmt.Errorf("%w: remaining length over 4 bytes", ErrMalformed)
		}
		c, err := r.ReadByte()
		if err != nil {
			return packet{}, noEOF(err)
		}
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		mul *= 128
	}
	if n > max {
		return packet{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, n, max)
	}
	p := packet{typ: b >> 4, flags: b & 0x0f, body: make([]byte, n)}
	if _, err := io.ReadFull(r, p.body); err != nil {
		return packet{}, noEOF(err)
	}
	return p, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// publish is an incoming PUBLISH.
type publish struct {
	topic   string
	id      uint16
	qos     byte
	retain  bool
	payload []byte
}

// parse checks a packet from the broker and returns its contents where it
// has any: the PUBLISH, or the packet identifier of a PUBACK/SUBACK with
// SUBACK's return codes.
func (p packet) parsePublish() (publish, error) {
	var m publish
	m.qos = p.flags >> 1 & 3
	m.retain = p.flags&1 != 0
	if m.qos > 1 {
		return m, fmt.Errorf("%w: PUBLISH with QoS %d (subscribed at most 1)", ErrMalformed, m.qos)
	}
	topic, rest, err := str(p.body)
	if err != nil || topic == "" {
		return m, fmt.Errorf("%w: PUBLISH topic", ErrMalformed)
	}
	m.topic = topic
	if m.qos > 0 {
		if len(rest) < 2 {
			return m, fmt.Errorf("%w: PUBLISH without packet identifier", ErrMalformed)
		}
		m.id = binary.BigEndian.Uint16(rest)
		if m.id == 0 {
			return m, fmt.Errorf("%w: PUBLISH with packet identifier 0", ErrMalformed)
		}
		rest = rest[2:]
	}
	m.payload = rest
	return m, nil
}

// parseID returns the packet identifier of a PUBACK (exactly 2 bytes) or
// of a SUBACK (2 bytes and the return codes).
func (p packet) parseID() (uint16, []byte, error) {
	if len(p.body) < 2 || (p.typ == typePuback && len(p.body) != 2) || (p.typ == typeSuback && len(p.body) < 3) {
		return 0, nil, fmt.Errorf("%w: type %d of %d bytes", ErrMalformed, p.typ, len(p.body))
	}
	return binary.BigEndian.Uint16(p.body), p.body[2:], nil
}

// parseConnack returns CONNACK's return code.
func (p packet) parseConnack() (byte, error) {
	if p.typ != typeConnack || len(p.body) != 2 || p.body[0]&0xfe != 0 {
		return 0, fmt.Errorf("%w: expected CONNACK, got type %d of %d bytes", ErrMalformed, p.typ, len(p.body))
	}
	return p.body[1], nil
}

// str reads a length-prefixed UTF-8 string.
func str(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, ErrMalformed
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

// encoder builds one outgoing packet.
type encoder struct{ b []byte }

func (e *encoder) byte1(c byte)    { e.b = append(e.b, c) }
func (e *encoder) u16(v uint16)    { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) bytes(v []byte)  { e.u16(uint16(len(v))); e.b = append(e.b, v...) }
func (e *encoder) string(v string) { e.u16(uint16(len(v))); e.b = append(e.b, v...) }

// frame prefixes the body with the fixed header.
func frame(first byte, body []byte) ([]byte, error) {
	n := len(body)
	if n > 268435455 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	out := make([]byte, 0, n+5)
	out = append(out, first)
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if n == 0 {
			break
		}
	}
	return append(out, body...), nil
}

// checkString refuses a string MQTT cannot carry.
func checkString(what, s string) error {
	if len(s) > 65535 {
		return fmt.Errorf("mqttc: %s of %d bytes (at most 65535)", what, len(s))
	}
	return nil
}
