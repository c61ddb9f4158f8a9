package shadow

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// The in-band block stream: for a node with no IP route to a file server,
// the head-end serves a package over MQTT. The node asks for the blocks it
// lacks with a bitmap (in the manner of the AWS IoT streams service) on
// state/<id>/stream/get, and the head-end answers each block on
// state/<id>/stream/data. Both are CBOR, not base64 in JSON: on a
// 2.4 kbit/s link every byte is airtime. Map keys are one-letter strings.

// Stream limits: a node never asks for more than this, and refuses a
// message that claims more.
const (
	MaxStreamBlock  = 4096 // bytes of one data message's payload
	MaxStreamWindow = 64   // blocks in one request (an 8-byte bitmap)
	maxStreamMsg    = MaxStreamBlock + 128
)

// StreamGet asks for blocks of a stream: bit i of Bitmap (LSB first in
// each byte) set asks for the BlockSize bytes at Offset + i*BlockSize.
type StreamGet struct {
	Stream    string `cbor:"s"`
	Offset    int64  `cbor:"o"`
	BlockSize int    `cbor:"l"`
	Bitmap    []byte `cbor:"b"`
}

// StreamData is one block of a stream (the last block may be short).
type StreamData struct {
	Stream string `cbor:"s"`
	Offset int64  `cbor:"o"`
	Data   []byte `cbor:"d"`
}

// ErrStream is a stream message refused.
var ErrStream = errors.New("shadow: bad stream message")

var streamDec, streamEnc = func() (cbor.DecMode, cbor.EncMode) {
	d, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	e, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()
	if err != nil {
		panic(err)
	}
	return d, e
}()

func decodeStream(b []byte, v any) error {
	if len(b) > maxStreamMsg {
		return fmt.Errorf("%w: %d bytes", ErrStream, len(b))
	}
	if err := streamDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrStream, err)
	}
	return nil
}

// Blocks returns how many blocks the request asks for.
func (g *StreamGet) Blocks() int {
	n := 0
	for i := 0; i < len(g.Bitmap)*8; i++ {
		if g.Wants(i) {
			n++
		}
	}
	return n
}

// Wants reports whether bit i of the bitmap is set.
func (g *StreamGet) Wants(i int) bool {
	return i >= 0 && i/8 < len(g.Bitmap) && g.Bitmap[i/8]&(1<<(i%8)) != 0
}

// Want sets bit i.
func (g *StreamGet) Want(i int) {
	for len(g.Bitmap) <= i/8 {
		g.Bitmap = append(g.Bitmap, 0)
	}
	g.Bitmap[i/8] |= 1 << (i % 8)
}

func (g *StreamGet) check() error {
	switch {
	case !streamName(g.Stream) || len(g.Stream) > MaxJobLen:
		return fmt.Errorf("%w: stream name %q", ErrStream, g.Stream)
	case g.Offset < 0:
		return fmt.Errorf("%w: offset %d", ErrStream, g.Offset)
	case g.BlockSize <= 0 || g.BlockSize > MaxStreamBlock:
		return fmt.Errorf("%w: block size %d", ErrStream, g.BlockSize)
	case len(g.Bitmap) == 0 || len(g.Bitmap)*8 > MaxStreamWindow:
		return fmt.Errorf("%w: bitmap of %d bytes", ErrStream, len(g.Bitmap))
	}
	return nil
}

// ParseStreamGet decodes and checks a request (the head-end's side).
func ParseStreamGet(b []byte) (StreamGet, error) {
	var g StreamGet
	if err := decodeStream(b, &g); err != nil {
		return StreamGet{}, err
	}
	if err := g.check(); err != nil {
		return StreamGet{}, err
	}
	return g, nil
}

// Encode encodes a checked request.
func (g StreamGet) Encode() ([]byte, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	return streamEnc.Marshal(g)
}

// ParseStreamData decodes and checks a data message (the node's side).
func ParseStreamData(b []byte) (StreamData, error) {
	var d StreamData
	if err := decodeStream(b, &d); err != nil {
		return StreamData{}, err
	}
	if !streamName(d.Stream) || len(d.Stream) > MaxJobLen || d.Offset < 0 || len(d.Data) == 0 {
		return StreamData{}, fmt.Errorf("%w: stream %q offset %d, %d bytes", ErrStream, d.Stream, d.Offset, len(d.Data))
	}
	return d, nil
}

// Encode encodes a data message.
func (d StreamData) Encode() ([]byte, error) { return streamEnc.Marshal(d) }
