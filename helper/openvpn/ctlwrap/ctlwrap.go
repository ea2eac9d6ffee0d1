// Package ctlwrap protects OpenVPN control-channel packets the way the
// server expects: not at all (plain), with an HMAC (tls-auth), or
// authenticated and encrypted with a pre-shared key (tls-crypt) or a
// per-client key (tls-crypt-v2). It also parses the static key files these
// modes use.
//
// A Wrapper is the client side of one mode for one connection: it owns the
// send counter and the receive replay window of the "replay packet id" that
// tls-auth and tls-crypt carry, so make a new one per connection attempt.
// Wrap and Unwrap may be called from different goroutines.
package ctlwrap

import (
	"errors"
	"fmt"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Wrapper turns control packets into wire packets and back.
type Wrapper interface {
	// Wrap appends the whole wire packet for p to dst (no TCP length
	// prefix). Each call uses a fresh replay packet id, so call it again
	// for every retransmission.
	Wrap(dst []byte, p *wire.ControlPacket) ([]byte, error)
	// Unwrap authenticates and decrypts a received packet and checks its
	// replay packet id. The returned Payload may alias b.
	Unwrap(b []byte) (wire.ControlPacket, error)
	// Overhead is the number of bytes Wrap adds to a packet's plain form
	// (see PacketOverhead for opcodes that carry more).
	Overhead() int
}

// Errors Unwrap returns, wrapped with detail; test with errors.Is.
var (
	ErrAuth   = errors.New("packet authentication failed")
	ErrReplay = errors.New("replayed or too old replay packet id")
	ErrShort  = errors.New("packet too short")
)

// PacketOverhead is the number of bytes w adds to a packet with opcode op;
// tls-crypt-v2 appends the wrapped client key to some opcodes.
func PacketOverhead(w Wrapper, op wire.Opcode) int {
	if v2, ok := w.(*tlsCrypt); ok && v2.carriesWKc(op) {
		return w.Overhead() + len(v2.wkc)
	}
	return w.Overhead()
}

type plain struct{}

// NewPlain returns the Wrapper for servers without tls-auth or tls-crypt.
func NewPlain() Wrapper { return plain{} }

func (plain) Wrap(dst []byte, p *wire.ControlPacket) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return dst, fmt.Errorf("wrap control packet: %w", err)
	}
	return p.AppendPlain(dst), nil
}

func (plain) Unwrap(b []byte) (wire.ControlPacket, error) {
	return wire.ParseControlPlain(b)
}

func (plain) Overhead() int { return 0 }
