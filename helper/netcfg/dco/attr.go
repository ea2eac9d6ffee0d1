package dco

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// nlaNested marks a nested attribute (NLA_F_NESTED); the ovpn family
// validates strictly and wants it.
const nlaNested = 0x8000

// attr is one netlink attribute: a value or nested attributes.
type attr struct {
	typ    uint16
	val    []byte
	nested []attr
}

func u8Attr(t uint16, v uint8) attr { return attr{typ: t, val: []byte{v}} }
func u16Attr(t uint16, v uint16) attr {
	return attr{typ: t, val: binary.NativeEndian.AppendUint16(nil, v)}
}
func u32Attr(t uint16, v uint32) attr {
	return attr{typ: t, val: binary.NativeEndian.AppendUint32(nil, v)}
}
func be16Attr(t uint16, v uint16) attr {
	return attr{typ: t, val: binary.BigEndian.AppendUint16(nil, v)}
}
func bytesAttr(t uint16, v []byte) attr { return attr{typ: t, val: v} }
func strAttr(t uint16, s string) attr   { return attr{typ: t, val: append([]byte(s), 0)} }
func nest(t uint16, children ...attr) attr {
	return attr{typ: t | nlaNested, nested: children}
}

func align4(n int) int { return (n + 3) &^ 3 }

// appendAttrs encodes attributes, each padded to four bytes.
func appendAttrs(b []byte, attrs ...attr) []byte {
	for _, a := range attrs {
		payload := a.val
		if a.nested != nil {
			payload = appendAttrs(nil, a.nested...)
		}
		l := 4 + len(payload)
		b = binary.NativeEndian.AppendUint16(b, uint16(l))
		b = binary.NativeEndian.AppendUint16(b, a.typ)
		b = append(b, payload...)
		for i := l; i < align4(l); i++ {
			b = append(b, 0)
		}
	}
	return b
}

// parsedAttrs maps attribute types (flags masked off) to their payloads;
// a repeated type keeps its last value.
type parsedAttrs map[uint16][]byte

var errShortAttr = errors.New("netlink attribute truncated")

func parseAttrs(b []byte) (parsedAttrs, error) {
	out := parsedAttrs{}
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errShortAttr
		}
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:]) &^ (nlaNested | 0x4000) // NLA_F_NET_BYTEORDER
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("%w: length %d with %d bytes left", errShortAttr, l, len(b))
		}
		out[t] = b[4:l]
		b = b[min(align4(l), len(b)):]
	}
	return out, nil
}

func (p parsedAttrs) u32(t uint16) (uint32, bool) {
	v, ok := p[t]
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(v), true
}

// uint reads the kernel's variable-width unsigned (NLA_UINT: 4 or 8 bytes).
func (p parsedAttrs) uint(t uint16) (uint64, bool) {
	v, ok := p[t]
	switch {
	case !ok:
		return 0, false
	case len(v) == 4:
		return uint64(binary.NativeEndian.Uint32(v)), true
	case len(v) == 8:
		return binary.NativeEndian.Uint64(v), true
	}
	return 0, false
}
