package ctlwrap

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"time"
)

// tls-crypt-v2 client keys: PEM "OpenVPN tls-crypt-v2 client key" holding
// Kc (a 256-byte static key) followed by WKc, the client key wrapped by the
// server key: tag(32) ‖ encrypted Kc ‖ metadata ‖ u16 length of WKc. The
// client cannot open WKc; it only checks the framing and sends it along.
const (
	tlsCryptV2ClientPEM = "OpenVPN tls-crypt-v2 client key"
	// maxWKcLen is OpenVPN's TLS_CRYPT_V2_MAX_WKC_LEN.
	maxWKcLen = 1024
	minWKcLen = tlsCryptTagLen + StaticKeyLen + 2
)

// TLSCryptV2ClientKey is a parsed tls-crypt-v2 client key.
type TLSCryptV2ClientKey struct {
	Kc  *StaticKey
	WKc []byte
}

// ParseTLSCryptV2ClientKey parses the PEM text of a tls-crypt-v2 client key
// (file or inline <tls-crypt-v2> block).
func ParseTLSCryptV2ClientKey(text []byte) (*TLSCryptV2ClientKey, error) {
	block, _ := pem.Decode(bytes.TrimSpace(text))
	if block == nil {
		return nil, fmt.Errorf("tls-crypt-v2 client key: no PEM block")
	}
	if block.Type != tlsCryptV2ClientPEM {
		return nil, fmt.Errorf("tls-crypt-v2 client key: PEM type %q, want %q", block.Type, tlsCryptV2ClientPEM)
	}
	raw := block.Bytes
	if len(raw) < StaticKeyLen+minWKcLen {
		return nil, fmt.Errorf("tls-crypt-v2 client key: %d bytes, too short", len(raw))
	}
	kc, err := NewStaticKey(raw[:StaticKeyLen])
	if err != nil {
		return nil, err
	}
	wkc := bytes.Clone(raw[StaticKeyLen:])
	if len(wkc) > maxWKcLen {
		return nil, fmt.Errorf("tls-crypt-v2 client key: wrapped key is %d bytes, at most %d", len(wkc), maxWKcLen)
	}
	if n := int(binary.BigEndian.Uint16(wkc[len(wkc)-2:])); n != len(wkc) {
		return nil, fmt.Errorf("tls-crypt-v2 client key: wrapped key says it is %d bytes, is %d", n, len(wkc))
	}
	return &TLSCryptV2ClientKey{Kc: kc, WKc: wkc}, nil
}

// NewTLSCryptV2 returns the client side of --tls-crypt-v2: tls-crypt with
// Kc, appending WKc to HARD_RESET_CLIENT_V3 and CONTROL_WKC_V1 packets.
// Its replay packet ids start at 0x0f000001, which tells a 2.6+ server the
// client can resend WKc (HMAC cookie support; see ResendWKcRequested).
func NewTLSCryptV2(clientKey []byte) (Wrapper, error) {
	return newTLSCryptV2(clientKey, nil)
}

func newTLSCryptV2(clientKey []byte, now func() time.Time) (*tlsCrypt, error) {
	k, err := ParseTLSCryptV2ClientKey(clientKey)
	if err != nil {
		return nil, err
	}
	return newTLSCrypt(k.Kc, DirectionInverse, k.WKc, now, earlyNegStart+1)
}

// Early-negotiation TLVs a 2.6+ server puts in the payload of its
// HARD_RESET_SERVER_V2 when the client announced support.
const (
	tlvEarlyNegFlags    = 0x0001
	earlyNegResendWKc   = 0x0001
	tlvHeaderLen        = 4
	earlyNegFlagsLength = 2
)

// ResendWKcRequested parses the TLVs in a HARD_RESET_SERVER_V2 payload and
// reports whether the server asks the client to resend WKc in a
// CONTROL_WKC_V1 packet as its next packet. An empty payload asks nothing;
// unknown TLV types are skipped.
func ResendWKcRequested(payload []byte) (bool, error) {
	resend := false
	for b := payload; len(b) > 0; {
		if len(b) < tlvHeaderLen {
			return false, fmt.Errorf("early negotiation: %d stray bytes", len(b))
		}
		typ := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		b = b[tlvHeaderLen:]
		if len(b) < n {
			return false, fmt.Errorf("early negotiation: TLV type %d needs %d bytes, has %d", typ, n, len(b))
		}
		if typ == tlvEarlyNegFlags {
			if n != earlyNegFlagsLength {
				return false, fmt.Errorf("early negotiation: flags TLV of length %d, want 2", n)
			}
			resend = binary.BigEndian.Uint16(b)&earlyNegResendWKc != 0
		}
		b = b[n:]
	}
	return resend, nil
}
