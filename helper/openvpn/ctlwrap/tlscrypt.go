package ctlwrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// tls-crypt layout on the wire:
//
//	op|key_id (1) ‖ session id (8) ‖ replay packet id (8) ‖ tag (32) ‖ AES-256-CTR(body)
//
// where tag = HMAC-SHA256(Ka, op ‖ session id ‖ replay id ‖ body) and the
// CTR IV is the first 16 bytes of the tag (a synthetic IV).
const (
	tlsCryptHeaderLen = 1 + 8 + replayIDLen
	tlsCryptTagLen    = sha256.Size
	tlsCryptOverhead  = replayIDLen + tlsCryptTagLen
	tlsCryptKeyLen    = 32 // AES-256 and HMAC-SHA256 both use 32 bytes of their slot
)

// earlyNegStart is the replay packet id a tls-crypt-v2 client starts
// counting from to tell the server it can resend WKc (HMAC cookie
// support): the top byte 0x0f marks early negotiation.
const earlyNegStart = 0x0f000000

type tlsCryptDir struct {
	mu    sync.Mutex
	block cipher.Block
	mac   hash.Hash
}

func newTLSCryptDir(k *StaticKey, slot int) (*tlsCryptDir, error) {
	block, err := aes.NewCipher(k.cipherSlot(slot)[:tlsCryptKeyLen])
	if err != nil {
		return nil, fmt.Errorf("tls-crypt cipher: %w", err)
	}
	return &tlsCryptDir{block: block, mac: hmac.New(sha256.New, k.hmacSlot(slot)[:tlsCryptKeyLen])}, nil
}

type tlsCrypt struct {
	send, recv *tlsCryptDir
	sendID     *replaySender
	recvID     *replayReceiver
	wkc        []byte // tls-crypt-v2 only: appended to reset V3 and WKC_V1
}

// NewTLSCrypt returns the client side of --tls-crypt with key k. The
// client always uses the inverse key direction: it sends with key 1 and
// receives with key 0.
func NewTLSCrypt(k *StaticKey) (Wrapper, error) {
	return newTLSCrypt(k, DirectionInverse, nil, nil, 1)
}

// newTLSCrypt builds either side: dir is DirectionInverse for a client,
// DirectionNormal for a server (tests use that to play the server).
func newTLSCrypt(k *StaticKey, dir int, wkc []byte, now func() time.Time, firstID uint32) (*tlsCrypt, error) {
	if k == nil {
		return nil, fmt.Errorf("tls-crypt: no key")
	}
	out, in, err := directionKeys(dir)
	if err != nil {
		return nil, fmt.Errorf("tls-crypt: %w", err)
	}
	send, err := newTLSCryptDir(k, out)
	if err != nil {
		return nil, err
	}
	recv, err := newTLSCryptDir(k, in)
	if err != nil {
		return nil, err
	}
	return &tlsCrypt{
		send:   send,
		recv:   recv,
		sendID: newReplaySender(now, firstID),
		recvID: newReplayReceiver(),
		wkc:    wkc,
	}, nil
}

func (t *tlsCrypt) Overhead() int { return tlsCryptOverhead }

func (t *tlsCrypt) carriesWKc(op wire.Opcode) bool {
	return t.wkc != nil && (op == wire.OpControlHardResetClientV3 || op == wire.OpControlWKCV1)
}

func (t *tlsCrypt) Wrap(dst []byte, p *wire.ControlPacket) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return dst, fmt.Errorf("tls-crypt wrap: %w", err)
	}
	start := len(dst)
	dst = append(dst, wire.JoinHeader(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	dst, err := t.sendID.append(dst)
	if err != nil {
		return dst[:start], fmt.Errorf("tls-crypt wrap: %w", err)
	}
	tagAt := len(dst)
	dst = append(dst, make([]byte, tlsCryptTagLen)...)
	bodyAt := len(dst)
	dst = p.AppendBody(dst)

	d := t.send
	d.mu.Lock()
	d.mac.Reset()
	d.mac.Write(dst[start:tagAt])
	d.mac.Write(dst[bodyAt:])
	d.mac.Sum(dst[tagAt:tagAt])
	cipher.NewCTR(d.block, dst[tagAt:tagAt+aes.BlockSize]).XORKeyStream(dst[bodyAt:], dst[bodyAt:])
	d.mu.Unlock()

	if t.carriesWKc(p.Opcode) {
		dst = append(dst, t.wkc...)
	}
	return dst, nil
}

func (t *tlsCrypt) Unwrap(b []byte) (wire.ControlPacket, error) {
	var p wire.ControlPacket
	if len(b) < tlsCryptHeaderLen+tlsCryptTagLen {
		return p, fmt.Errorf("tls-crypt unwrap: %w: %d bytes", ErrShort, len(b))
	}
	op, keyID := wire.SplitHeader(b[0])
	if !op.IsControl() {
		return p, fmt.Errorf("tls-crypt unwrap: %w: %v", wire.ErrOpcode, op)
	}
	header := b[:tlsCryptHeaderLen]
	tag := b[tlsCryptHeaderLen : tlsCryptHeaderLen+tlsCryptTagLen]
	ct := b[tlsCryptHeaderLen+tlsCryptTagLen:]
	body := make([]byte, len(ct))

	var sum [sha256.Size]byte
	d := t.recv
	d.mu.Lock()
	cipher.NewCTR(d.block, tag[:aes.BlockSize]).XORKeyStream(body, ct)
	d.mac.Reset()
	d.mac.Write(header)
	d.mac.Write(body)
	d.mac.Sum(sum[:0])
	d.mu.Unlock()
	if subtle.ConstantTimeCompare(sum[:], tag) != 1 {
		return p, fmt.Errorf("tls-crypt unwrap %v: %w", op, ErrAuth)
	}
	if err := t.recvID.accept(b[1+8 : tlsCryptHeaderLen]); err != nil {
		return p, fmt.Errorf("tls-crypt unwrap %v: %w", op, err)
	}
	p.Opcode, p.KeyID = op, keyID
	copy(p.SessionID[:], b[1:9])
	if err := p.ParseBody(body); err != nil {
		return wire.ControlPacket{}, fmt.Errorf("tls-crypt unwrap: %w", err)
	}
	return p, nil
}
