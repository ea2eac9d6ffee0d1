package ctlwrap

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// tls-auth layout on the wire:
//
//	op|key_id (1) ‖ session id (8) ‖ HMAC ‖ replay packet id (8) ‖ body
//
// where HMAC = HMAC-<digest>(replay id ‖ op ‖ session id ‖ body); OpenVPN
// computes it with the replay id first and then moves op‖session id in
// front of the whole thing.

var digests = map[string]func() hash.Hash{
	"SHA1":   sha1.New,
	"SHA224": sha256.New224,
	"SHA256": sha256.New,
	"SHA384": sha512.New384,
	"SHA512": sha512.New,
}

// normalizeDigest maps the spellings OpenVPN accepts for --auth
// ("sha256", "SHA-256", "SHA2-256") to one name; "" is the default SHA1.
func normalizeDigest(name string) string {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", ""))
	switch n {
	case "":
		return "SHA1"
	case "SHA2224", "SHA2256", "SHA2384", "SHA2512":
		return "SHA" + n[4:]
	}
	return n
}

type macDir struct {
	mu  sync.Mutex
	mac hash.Hash
}

type tlsAuth struct {
	size       int
	send, recv *macDir
	sendID     *replaySender
	recvID     *replayReceiver
}

// NewTLSAuth returns the client side of --tls-auth. keyDirection is the
// profile's key-direction (a client normally has 1) or DirectionNone (-1)
// to use key 0 both ways; digest is the --auth name, "" for OpenVPN's
// default SHA1.
func NewTLSAuth(k *StaticKey, keyDirection int, digest string) (Wrapper, error) {
	return newTLSAuth(k, keyDirection, digest, nil)
}

func newTLSAuth(k *StaticKey, keyDirection int, digest string, now func() time.Time) (*tlsAuth, error) {
	if k == nil {
		return nil, fmt.Errorf("tls-auth: no key")
	}
	newHash, ok := digests[normalizeDigest(digest)]
	if !ok {
		return nil, fmt.Errorf("tls-auth: digest %q not supported (SHA1, SHA224, SHA256, SHA384, SHA512)", digest)
	}
	out, in, err := directionKeys(keyDirection)
	if err != nil {
		return nil, fmt.Errorf("tls-auth: %w", err)
	}
	size := newHash().Size()
	return &tlsAuth{
		size:   size,
		send:   &macDir{mac: hmac.New(newHash, k.hmacSlot(out)[:size])},
		recv:   &macDir{mac: hmac.New(newHash, k.hmacSlot(in)[:size])},
		sendID: newReplaySender(now, 1),
		recvID: newReplayReceiver(),
	}, nil
}

func (a *tlsAuth) Overhead() int { return a.size + replayIDLen }

func (a *tlsAuth) Wrap(dst []byte, p *wire.ControlPacket) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return dst, fmt.Errorf("tls-auth wrap: %w", err)
	}
	start := len(dst)
	dst = append(dst, wire.JoinHeader(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	macAt := len(dst)
	dst = append(dst, make([]byte, a.size)...)
	pidAt := len(dst)
	dst, err := a.sendID.append(dst)
	if err != nil {
		return dst[:start], fmt.Errorf("tls-auth wrap: %w", err)
	}
	dst = p.AppendBody(dst)

	d := a.send
	d.mu.Lock()
	d.mac.Reset()
	d.mac.Write(dst[pidAt : pidAt+replayIDLen])
	d.mac.Write(dst[start:macAt])
	d.mac.Write(dst[pidAt+replayIDLen:])
	d.mac.Sum(dst[macAt:macAt])
	d.mu.Unlock()
	// Sum appended into dst[macAt:macAt]'s capacity, i.e. over the
	// reserved zero bytes, leaving dst's length unchanged.
	return dst, nil
}

func (a *tlsAuth) Unwrap(b []byte) (wire.ControlPacket, error) {
	var p wire.ControlPacket
	hdr := 1 + 8
	if len(b) < hdr+a.size+replayIDLen {
		return p, fmt.Errorf("tls-auth unwrap: %w: %d bytes", ErrShort, len(b))
	}
	op, keyID := wire.SplitHeader(b[0])
	if !op.IsControl() {
		return p, fmt.Errorf("tls-auth unwrap: %w: %v", wire.ErrOpcode, op)
	}
	tag := b[hdr : hdr+a.size]
	pid := b[hdr+a.size : hdr+a.size+replayIDLen]
	body := b[hdr+a.size+replayIDLen:]

	var sum [sha512.Size]byte
	d := a.recv
	d.mu.Lock()
	d.mac.Reset()
	d.mac.Write(pid)
	d.mac.Write(b[:hdr])
	d.mac.Write(body)
	got := d.mac.Sum(sum[:0])
	d.mu.Unlock()
	if subtle.ConstantTimeCompare(got, tag) != 1 {
		return p, fmt.Errorf("tls-auth unwrap %v: %w", op, ErrAuth)
	}
	if err := a.recvID.accept(pid); err != nil {
		return p, fmt.Errorf("tls-auth unwrap %v: %w", op, err)
	}
	p.Opcode, p.KeyID = op, keyID
	copy(p.SessionID[:], b[1:hdr])
	if err := p.ParseBody(body); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-auth unwrap: %w", err)
	}
	return p, nil
}
