package dataplane

import (
	"errors"
	"fmt"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
)

// Framing is the compression framing of data-channel payloads. This
// client never compresses: it only adds and strips the "not compressed"
// markers the server expects, exactly as the profile or the push says
// (the forms are not interchangeable on the wire).
type Framing uint8

const (
	FramingNone    Framing = iota
	FramingLZOStub         // comp-lzo no / compress lzo: 0xFA prefix
	FramingStub            // compress [stub|lz4]: first byte moved to the end, 0xFB in its place
	FramingStubV2          // compress stub-v2: 0x50 0x00 prefix only before a payload starting with 0x50
)

// Framing bytes (OpenVPN comp.h).
const (
	noCompressByte     = 0xFA
	noCompressByteSwap = 0xFB
	compV2Indicator    = 0x50
	compV2Uncompressed = 0x00
)

// frameHeadroom and frameTailroom are the bytes frame may need before
// and after the payload.
const (
	frameHeadroom = 2
	frameTailroom = 1
)

func FramingOf(c push.Compression) Framing {
	switch c {
	case push.CompressionLZOStub:
		return FramingLZOStub
	case push.CompressionStub:
		return FramingStub
	case push.CompressionStubV2:
		return FramingStubV2
	}
	return FramingNone
}

func (f Framing) String() string {
	switch f {
	case FramingLZOStub:
		return "comp-lzo no"
	case FramingStub:
		return "compress stub"
	case FramingStubV2:
		return "compress stub-v2"
	}
	return "none"
}

// frame marks the payload buf[off:off+n] as not compressed, in place.
// buf must have frameHeadroom bytes before off and frameTailroom after
// the payload.
func (f Framing) frame(buf []byte, off, n int) []byte {
	p := buf[off : off+n]
	switch f {
	case FramingLZOStub:
		buf[off-1] = noCompressByte
		return buf[off-1 : off+n]
	case FramingStub:
		if n == 0 {
			return append(p, noCompressByteSwap)
		}
		p = buf[off : off+n+1]
		p[n] = p[0]
		p[0] = noCompressByteSwap
		return p
	case FramingStubV2:
		if n > 0 && p[0] == compV2Indicator {
			buf[off-2], buf[off-1] = compV2Indicator, compV2Uncompressed
			return buf[off-2 : off+n]
		}
	}
	return p
}

var errCompressed = errors.New("compressed data packet refused (allow-compression is not asym)")

// unframe strips the framing from a received payload, in place. A packet
// that says it is compressed is decompressed by d (the result is d's
// buffer), or is an error when d is nil: decompression was not allowed.
func (f Framing) unframe(p []byte, d *decompressor) ([]byte, error) {
	if f == FramingNone || len(p) == 0 {
		return p, nil
	}
	switch f {
	case FramingLZOStub:
		switch {
		case p[0] == noCompressByte:
			return p[1:], nil
		case p[0] == lzoCompressByte && d != nil:
			return d.lzo(p[1:])
		}
		return nil, fmt.Errorf("comp-lzo header 0x%02x: %w", p[0], errCompressed)
	case FramingStub:
		c := p[0]
		if c != noCompressByteSwap && (c != lz4CompressByte || d == nil) {
			return nil, fmt.Errorf("compress stub header 0x%02x: %w", c, errCompressed)
		}
		last := len(p) - 1
		p[0] = p[last]
		if c == lz4CompressByte {
			return d.lz4(p[:last])
		}
		return p[:last], nil
	case FramingStubV2:
		if p[0] != compV2Indicator {
			return p, nil
		}
		if len(p) < 2 {
			return nil, fmt.Errorf("compress stub-v2: truncated header: %w", errCompressed)
		}
		switch {
		case p[1] == compV2Uncompressed:
			return p[2:], nil
		case p[1] == compV2LZ4 && d != nil:
			return d.lz4(p[2:])
		case p[1] == compV2LZO && d != nil:
			return d.lzo(p[2:])
		}
		return nil, fmt.Errorf("compress stub-v2 algorithm byte 0x%02x: %w", p[1], errCompressed)
	}
	return p, nil
}
