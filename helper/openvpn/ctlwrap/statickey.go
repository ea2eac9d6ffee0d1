package ctlwrap

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// StaticKeyLen is the size of an "OpenVPN Static key V1": two keys, each a
// 64-byte cipher slot followed by a 64-byte HMAC slot.
const StaticKeyLen = 256

const (
	slotLen       = 64
	staticBegin   = "-----BEGIN OpenVPN Static key V1-----"
	staticEnd     = "-----END OpenVPN Static key V1-----"
	staticKeyName = "OpenVPN Static key V1"
)

// StaticKey is a parsed 256-byte static key (tls-auth, tls-crypt, or the
// Kc of a tls-crypt-v2 client key). Its String method never shows the key.
type StaticKey struct {
	b [StaticKeyLen]byte
}

// NewStaticKey wraps 256 raw key bytes.
func NewStaticKey(raw []byte) (*StaticKey, error) {
	if len(raw) != StaticKeyLen {
		return nil, fmt.Errorf("static key: %d bytes, want %d", len(raw), StaticKeyLen)
	}
	k := &StaticKey{}
	copy(k.b[:], raw)
	return k, nil
}

// ParseStaticKey parses the text of an "OpenVPN Static key V1" file (or an
// inline <tls-auth>/<tls-crypt> block): optional comment lines before the
// BEGIN marker, then 256 bytes in hex up to the END marker.
func ParseStaticKey(text []byte) (*StaticKey, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	var hexText strings.Builder
	inside, done := false, false
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case done:
			// Text after the END marker is ignored, as OpenVPN does.
		case !inside:
			if s == staticBegin {
				inside = true
			}
			// Comments and anything else before BEGIN are ignored.
		case s == staticEnd:
			done = true
		case s == "" || strings.HasPrefix(s, "#"):
		default:
			for _, c := range s {
				if !isHex(c) && c != ' ' && c != '\t' {
					return nil, fmt.Errorf("static key: line %d: invalid character %q", line, c)
				}
			}
			hexText.WriteString(strings.Join(strings.Fields(s), ""))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("static key: %w", err)
	}
	if !inside {
		return nil, fmt.Errorf("static key: no %q marker", staticBegin)
	}
	if !done {
		return nil, fmt.Errorf("static key: no %q marker", staticEnd)
	}
	raw, err := hex.DecodeString(hexText.String())
	if err != nil {
		return nil, fmt.Errorf("static key: odd number of hex digits")
	}
	if len(raw) != StaticKeyLen {
		return nil, fmt.Errorf("static key: %d bytes of key material, want %d", len(raw), StaticKeyLen)
	}
	return NewStaticKey(raw)
}

func isHex(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// cipherSlot and hmacSlot return the 64-byte slots of key i (0 or 1).
func (k *StaticKey) cipherSlot(i int) []byte { return k.b[i*2*slotLen : i*2*slotLen+slotLen] }
func (k *StaticKey) hmacSlot(i int) []byte   { return k.b[i*2*slotLen+slotLen : (i+1)*2*slotLen] }

// Bytes returns a copy of the 256 key bytes.
func (k *StaticKey) Bytes() []byte { return bytes.Clone(k.b[:]) }

// String hides the key material so a key never reaches a log by accident.
func (k *StaticKey) String() string { return staticKeyName + " (redacted)" }

// GoString hides the key material from %#v as well.
func (k *StaticKey) GoString() string { return k.String() }

// Key directions as OpenVPN numbers them. A client uses "inverse" for
// tls-crypt (send with key 1, receive with key 0); for tls-auth
// key-direction 1 is inverse, 0 normal, and no direction uses key 0 both ways.
const (
	DirectionNone    = -1
	DirectionNormal  = 0
	DirectionInverse = 1
)

// directionKeys returns which of the two keys to send and receive with.
func directionKeys(dir int) (out, in int, err error) {
	switch dir {
	case DirectionNone:
		return 0, 0, nil
	case DirectionNormal:
		return 0, 1, nil
	case DirectionInverse:
		return 1, 0, nil
	}
	return 0, 0, fmt.Errorf("key direction %d: want 0, 1 or none", dir)
}
