// Package ctlmsg encodes and decodes the text-level messages an OpenVPN
// client exchanges with its server over the TLS control channel: the
// key-method 2 record that opens every TLS session (with the peer-info and
// OCC options strings it carries) and the NUL-terminated text messages that
// follow (PUSH_REPLY, AUTH_FAILED, AUTH_PENDING, RESTART, …).
//
// Everything here is pure data transformation so the engine can stay about
// timing and state, and so the parsers can be fuzzed on their own.
package ctlmsg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// keyMethod2 is the only key method OpenVPN 2.5+ and 3.x speak; method 1
// was removed.
const keyMethod2 = 2

// Limits the server enforces (ovpn2 TLS_OPTIONS_LEN and a generous
// USER_PASS_LEN); checked on marshal so the engine fails with a clear
// message instead of having the server drop the session.
const (
	MaxOptionsLen = 512     // incl. NUL
	MaxUserLen    = 4096    // incl. NUL; most servers accept only 128
	maxStringLen  = 1 << 16 // u16 length prefix
)

// KeyMethod2 is the client's key-method 2 message: the first application
// data record of every TLS session, carrying key material for the legacy
// PRF, the OCC options string, credentials and peer-info.
type KeyMethod2 struct {
	PreMaster        [48]byte
	Random1, Random2 [32]byte
	Options          string
	// Username and Password are sent when either is non-empty; when both
	// are empty the message says "no credentials" (two zero lengths),
	// which is what a certificate-only client sends.
	Username, Password string
	PeerInfo           string
}

// MarshalClient encodes m as the client sends it. Strings that do not fit
// the u16 length prefix are truncated by no one: use Validate first if the
// values come from outside.
func (m *KeyMethod2) MarshalClient() []byte {
	n := 4 + 1 + 48 + 64 + 4*2 + len(m.Options) + len(m.Username) + len(m.Password) + len(m.PeerInfo) + 4
	b := make([]byte, 0, n)
	b = append(b, 0, 0, 0, 0, keyMethod2)
	b = append(b, m.PreMaster[:]...)
	b = append(b, m.Random1[:]...)
	b = append(b, m.Random2[:]...)
	b = appendString(b, m.Options)
	if m.Username != "" || m.Password != "" {
		b = appendString(b, m.Username)
		b = appendString(b, m.Password)
	} else {
		b = append(b, 0, 0, 0, 0)
	}
	b = appendString(b, m.PeerInfo)
	return b
}

// Validate reports fields that the wire format or the server cannot carry.
func (m *KeyMethod2) Validate() error {
	if len(m.Options)+1 > MaxOptionsLen {
		return fmt.Errorf("options string is %d bytes, limit %d", len(m.Options), MaxOptionsLen-1)
	}
	if len(m.Username)+1 > MaxUserLen {
		return fmt.Errorf("username is %d bytes, limit %d", len(m.Username), MaxUserLen-1)
	}
	if len(m.Password)+1 > MaxUserLen {
		return fmt.Errorf("password is %d bytes, limit %d", len(m.Password), MaxUserLen-1)
	}
	if len(m.PeerInfo)+1 >= maxStringLen {
		return fmt.Errorf("peer-info is %d bytes, too long", len(m.PeerInfo))
	}
	for name, s := range map[string]string{"options": m.Options, "username": m.Username, "password": m.Password, "peer-info": m.PeerInfo} {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%s contains a NUL byte", name)
		}
	}
	return nil
}

// appendString writes OpenVPN's string encoding: u16 length including the
// terminating NUL, the bytes, the NUL. An empty string is still written
// with length 1 (OpenVPN distinguishes it from an absent one).
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)+1))
	b = append(b, s...)
	return append(b, 0)
}

// ServerKeyMethod2 is the server's key-method 2 reply. It carries no
// pre-master secret; credentials and peer-info are normally empty.
type ServerKeyMethod2 struct {
	Random1, Random2 [32]byte
	Options          string
	PeerInfo         string
}

// ErrShort is wrapped by parse errors caused by truncated input.
var ErrShort = errors.New("message truncated")

// ParseServerKeyMethod2 decodes the server's key-method 2 reply. Fields
// after the options string (username, password, peer-info) are optional,
// as in OpenVPN, but a field that starts must be complete.
func ParseServerKeyMethod2(b []byte) (ServerKeyMethod2, error) {
	var m ServerKeyMethod2
	if len(b) < 4+1+64 {
		return m, fmt.Errorf("key-method 2 reply: %d bytes, need at least %d: %w", len(b), 4+1+64, ErrShort)
	}
	if b[0]|b[1]|b[2]|b[3] != 0 {
		return m, fmt.Errorf("key-method 2 reply: leading 4 bytes are %x, want zero", b[:4])
	}
	if km := b[4] & 0x0f; km != keyMethod2 {
		return m, fmt.Errorf("key-method 2 reply: key method %d, want 2", km)
	}
	copy(m.Random1[:], b[5:37])
	copy(m.Random2[:], b[37:69])
	r := reader{b: b[69:]}
	var err error
	if m.Options, err = r.str("options"); err != nil {
		return ServerKeyMethod2{}, fmt.Errorf("key-method 2 reply: %w", err)
	}
	if len(m.Options)+1 > MaxOptionsLen {
		return ServerKeyMethod2{}, fmt.Errorf("key-method 2 reply: options string is %d bytes, limit %d", len(m.Options), MaxOptionsLen-1)
	}
	for _, field := range []string{"username", "password"} {
		if r.empty() {
			return m, nil
		}
		if _, err := r.str(field); err != nil {
			return ServerKeyMethod2{}, fmt.Errorf("key-method 2 reply: %w", err)
		}
	}
	if r.empty() {
		return m, nil
	}
	if m.PeerInfo, err = r.str("peer-info"); err != nil {
		return ServerKeyMethod2{}, fmt.Errorf("key-method 2 reply: %w", err)
	}
	return m, nil
}

type reader struct{ b []byte }

func (r *reader) empty() bool { return len(r.b) == 0 }

// str reads one length-prefixed string. OpenVPN forces the last byte to
// NUL instead of checking it; we cut at the first NUL, which gives the same
// result for well-formed input and never reads past the field.
func (r *reader) str(field string) (string, error) {
	if len(r.b) < 2 {
		return "", fmt.Errorf("%s length: %w", field, ErrShort)
	}
	n := int(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	if n == 0 {
		return "", nil
	}
	if len(r.b) < n {
		return "", fmt.Errorf("%s: length %d but %d bytes left: %w", field, n, len(r.b), ErrShort)
	}
	s := r.b[:n]
	r.b = r.b[n:]
	if i := strings.IndexByte(string(s), 0); i >= 0 {
		s = s[:i]
	} else {
		s = s[:n-1]
	}
	return string(s), nil
}
