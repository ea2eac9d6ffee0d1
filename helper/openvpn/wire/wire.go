// Package wire holds the OpenVPN packet formats the engine reads and writes:
// opcodes and the op|key_id byte, session ids, the unwrapped control/ACK
// packet layout and the DATA_V2 header. It does no cryptography; the
// ctlwrap and datachan packages build on it.
package wire

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Opcode is the high five bits of a packet's first byte.
type Opcode uint8

// The opcodes a client meets. 1 and 2 (key-method 1 resets) are obsolete
// and deliberately absent: parsing rejects them.
const (
	OpControlSoftResetV1       Opcode = 3
	OpControlV1                Opcode = 4
	OpAckV1                    Opcode = 5
	OpDataV1                   Opcode = 6
	OpControlHardResetClientV2 Opcode = 7
	OpControlHardResetServerV2 Opcode = 8
	OpDataV2                   Opcode = 9
	OpControlHardResetClientV3 Opcode = 10
	OpControlWKCV1             Opcode = 11
)

// Limits on acknowledgements per packet (OpenVPN's RELIABLE_ACK_SIZE and
// CONTROL_SEND_ACK_MAX). A parser accepts up to MaxAcksPerAck in any packet.
const (
	MaxAcksPerAck     = 8
	MaxAcksPerControl = 4
)

// KeyIDMask selects the key_id bits of the first byte.
const KeyIDMask = 0x07

var opNames = map[Opcode]string{
	OpControlSoftResetV1:       "P_CONTROL_SOFT_RESET_V1",
	OpControlV1:                "P_CONTROL_V1",
	OpAckV1:                    "P_ACK_V1",
	OpDataV1:                   "P_DATA_V1",
	OpControlHardResetClientV2: "P_CONTROL_HARD_RESET_CLIENT_V2",
	OpControlHardResetServerV2: "P_CONTROL_HARD_RESET_SERVER_V2",
	OpDataV2:                   "P_DATA_V2",
	OpControlHardResetClientV3: "P_CONTROL_HARD_RESET_CLIENT_V3",
	OpControlWKCV1:             "P_CONTROL_WKC_V1",
}

func (op Opcode) String() string {
	if s, ok := opNames[op]; ok {
		return s
	}
	return fmt.Sprintf("opcode(%d)", uint8(op))
}

// IsControl reports whether op is a control-channel opcode (including
// ACK_V1), i.e. one whose packet has the control layout.
func (op Opcode) IsControl() bool {
	switch op {
	case OpControlSoftResetV1, OpControlV1, OpAckV1, OpControlHardResetClientV2,
		OpControlHardResetServerV2, OpControlHardResetClientV3, OpControlWKCV1:
		return true
	}
	return false
}

// IsData reports whether op is a data-channel opcode.
func (op Opcode) IsData() bool { return op == OpDataV1 || op == OpDataV2 }

// HasPacketID reports whether a control packet with this opcode carries a
// message packet id; only ACK_V1 does not.
func (op Opcode) HasPacketID() bool { return op.IsControl() && op != OpAckV1 }

// SplitHeader splits the first byte of a packet into opcode and key_id.
func SplitHeader(b byte) (op Opcode, keyID uint8) {
	return Opcode(b >> 3), b & KeyIDMask
}

// JoinHeader builds the first byte of a packet. Bits beyond the field
// widths are dropped.
func JoinHeader(op Opcode, keyID uint8) byte {
	return byte(op)<<3 | keyID&KeyIDMask
}

// SessionID is the random 64-bit id each side picks per hard reset.
type SessionID [8]byte

// NewSessionID returns a random session id.
func NewSessionID() (SessionID, error) {
	var s SessionID
	if _, err := rand.Read(s[:]); err != nil {
		return s, fmt.Errorf("random session id: %w", err)
	}
	return s, nil
}

// IsZero reports whether s is all zero (no session id known yet).
func (s SessionID) IsZero() bool { return s == SessionID{} }

func (s SessionID) String() string { return hex.EncodeToString(s[:]) }

// ControlPacket is one control-channel packet (CONTROL, ACK or a reset),
// independent of any tls-auth/tls-crypt wrapping.
type ControlPacket struct {
	Opcode    Opcode
	KeyID     uint8
	SessionID SessionID
	Acks      []uint32
	// RemoteSessionID is on the wire only when len(Acks) > 0.
	RemoteSessionID SessionID
	// PacketID is absent on the wire for ACK_V1.
	PacketID uint32
	// Payload is the TLS record bytes (or, for resets, an optional TLV).
	// For ACK_V1 it must be empty. After parsing it aliases the input.
	Payload []byte
}

// Errors a parser returns, wrapped with detail; test with errors.Is.
var (
	ErrShort  = errors.New("packet too short")
	ErrOpcode = errors.New("not a control opcode")
	ErrAcks   = errors.New("bad ack count")
	ErrExtra  = errors.New("unexpected bytes after ACK")
)

// Validate checks what AppendPlain cannot express: the opcode, key_id,
// number of acks and an ACK without payload.
func (p *ControlPacket) Validate() error {
	if !p.Opcode.IsControl() {
		return fmt.Errorf("%w: %v", ErrOpcode, p.Opcode)
	}
	if p.KeyID > KeyIDMask {
		return fmt.Errorf("key_id %d out of range 0..7", p.KeyID)
	}
	if len(p.Acks) > MaxAcksPerAck {
		return fmt.Errorf("%w: %d acks, at most %d", ErrAcks, len(p.Acks), MaxAcksPerAck)
	}
	if p.Opcode == OpAckV1 && len(p.Acks) == 0 {
		return fmt.Errorf("%w: ACK_V1 without acks", ErrAcks)
	}
	if p.Opcode == OpAckV1 && len(p.Payload) > 0 {
		return fmt.Errorf("%w: ACK_V1 with %d payload bytes", ErrExtra, len(p.Payload))
	}
	return nil
}

// PlainLen is the length of p's unwrapped wire form.
func (p *ControlPacket) PlainLen() int {
	return 1 + 8 + p.BodyLen()
}

// BodyLen is the length of the part after the session id: ack array,
// remote session id, packet id and payload.
func (p *ControlPacket) BodyLen() int {
	n := 1 + 4*len(p.Acks)
	if len(p.Acks) > 0 {
		n += 8
	}
	if p.Opcode != OpAckV1 {
		n += 4
	}
	return n + len(p.Payload)
}

// AppendPlain appends p's unwrapped wire form to dst. It does not check p;
// call Validate first for packets not built by the caller itself (more
// than 255 acks cannot be encoded and would corrupt the packet).
func (p *ControlPacket) AppendPlain(dst []byte) []byte {
	dst = append(dst, JoinHeader(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	return p.AppendBody(dst)
}

// AppendBody appends the part of the wire form that follows the session id.
// tls-auth and tls-crypt put their own fields between the two.
func (p *ControlPacket) AppendBody(dst []byte) []byte {
	dst = append(dst, byte(len(p.Acks)))
	for _, a := range p.Acks {
		dst = binary.BigEndian.AppendUint32(dst, a)
	}
	if len(p.Acks) > 0 {
		dst = append(dst, p.RemoteSessionID[:]...)
	}
	if p.Opcode != OpAckV1 {
		dst = binary.BigEndian.AppendUint32(dst, p.PacketID)
	}
	return append(dst, p.Payload...)
}

// ParseControlPlain parses an unwrapped control packet. The returned
// Payload aliases b.
func ParseControlPlain(b []byte) (ControlPacket, error) {
	var p ControlPacket
	if len(b) < 1+8 {
		return p, fmt.Errorf("control packet: %w: %d bytes, header needs 9", ErrShort, len(b))
	}
	p.Opcode, p.KeyID = SplitHeader(b[0])
	if !p.Opcode.IsControl() {
		return p, fmt.Errorf("control packet: %w: %v", ErrOpcode, p.Opcode)
	}
	copy(p.SessionID[:], b[1:9])
	if err := p.ParseBody(b[9:]); err != nil {
		return ControlPacket{}, err
	}
	return p, nil
}

// ParseBody fills Acks, RemoteSessionID, PacketID and Payload of p from the
// bytes that follow the session id; p.Opcode must already be set. Payload
// aliases b.
func (p *ControlPacket) ParseBody(b []byte) error {
	if len(b) < 1 {
		return fmt.Errorf("%v: %w: no ack count", p.Opcode, ErrShort)
	}
	n := int(b[0])
	b = b[1:]
	if n > MaxAcksPerAck {
		return fmt.Errorf("%v: %w: %d, at most %d", p.Opcode, ErrAcks, n, MaxAcksPerAck)
	}
	if n > 0 {
		if len(b) < 4*n+8 {
			return fmt.Errorf("%v: %w: %d acks need %d bytes, have %d", p.Opcode, ErrShort, n, 4*n+8, len(b))
		}
		p.Acks = make([]uint32, n)
		for i := range p.Acks {
			p.Acks[i] = binary.BigEndian.Uint32(b[4*i:])
		}
		b = b[4*n:]
		copy(p.RemoteSessionID[:], b[:8])
		b = b[8:]
	} else {
		p.Acks = nil
		p.RemoteSessionID = SessionID{}
	}
	if p.Opcode == OpAckV1 {
		if n == 0 {
			return fmt.Errorf("%v: %w: ACK_V1 without acks", p.Opcode, ErrAcks)
		}
		if len(b) > 0 {
			return fmt.Errorf("%v: %w: %d bytes", p.Opcode, ErrExtra, len(b))
		}
		p.PacketID = 0
		p.Payload = nil
		return nil
	}
	if len(b) < 4 {
		return fmt.Errorf("%v: %w: no message packet id", p.Opcode, ErrShort)
	}
	p.PacketID = binary.BigEndian.Uint32(b)
	p.Payload = b[4:]
	if len(p.Payload) == 0 {
		p.Payload = nil
	}
	return nil
}

// Data channel header constants.
const (
	// DataV2HeaderLen is op|key_id plus the 24-bit peer-id.
	DataV2HeaderLen = 4
	// PeerIDUnset is the peer-id value meaning "no peer-id".
	PeerIDUnset = 0xFFFFFF
	// MaxPeerID is the largest encodable peer-id.
	MaxPeerID = 0xFFFFFF
)

// AppendDataV2Header appends op|key_id and the 24-bit big-endian peer-id.
// Bits of peerID above 24 are dropped.
func AppendDataV2Header(dst []byte, keyID uint8, peerID uint32) []byte {
	return append(dst, JoinHeader(OpDataV2, keyID), byte(peerID>>16), byte(peerID>>8), byte(peerID))
}

// ParseDataV2Header reads the DATA_V2 header at the start of b.
func ParseDataV2Header(b []byte) (keyID uint8, peerID uint32, err error) {
	if len(b) < DataV2HeaderLen {
		return 0, 0, fmt.Errorf("DATA_V2 header: %w: %d bytes", ErrShort, len(b))
	}
	op, keyID := SplitHeader(b[0])
	if op != OpDataV2 {
		return 0, 0, fmt.Errorf("DATA_V2 header: opcode is %v", op)
	}
	return keyID, uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}
