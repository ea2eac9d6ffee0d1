// Package datachan is the OpenVPN data channel crypto: it splits the
// 256-byte key block into per-direction keys and seals and opens AEAD
// DATA_V1/DATA_V2 packets (AES-GCM, ChaCha20-Poly1305) with a replay window
// per key. It also holds the keepalive ping payload and the legacy TLS 1.0
// PRF key derivation for servers without TLS-EKM.
//
// Legacy AES-CBC + HMAC keys (cbc.go) exist for servers that offer
// nothing else; they are built only when a profile names such a cipher.
//
// Seal and Open do not allocate when the caller's buffer has room, so the
// data plane can run them per packet.
package datachan

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/replay"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// KeyBlockLen is the size of the key material both sides derive per key:
// cipher_c2s[64] ‖ hmac_c2s[64] ‖ cipher_s2c[64] ‖ hmac_s2c[64].
const KeyBlockLen = 256

// EKMLabel is the TLS exporter label OpenVPN uses to derive the key block
// (RFC 5705, no context, KeyBlockLen bytes).
const EKMLabel = "EXPORTER-OpenVPN-datakeys"

const (
	slotLen = 64
	// TagLen is the AEAD tag size of every supported cipher.
	TagLen = 16
	// PacketIDLen is the size of the data-channel packet id.
	PacketIDLen   = 4
	implicitIVLen = 8
	nonceLen      = PacketIDLen + implicitIVLen
)

// PingPayload is the decrypted payload of an OpenVPN keepalive ping. It is
// never written to the TUN device.
var PingPayload = [16]byte{
	0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb,
	0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48,
}

// IsPing reports whether a decrypted payload is a keepalive ping.
func IsPing(payload []byte) bool { return bytes.Equal(payload, PingPayload[:]) }

// Cipher names as OpenVPN spells them in data-ciphers and pushed "cipher".
var ciphers = map[string]struct {
	keyLen int
	new    func(key []byte) (cipher.AEAD, error)
}{
	"AES-128-GCM":       {16, newGCM},
	"AES-192-GCM":       {24, newGCM},
	"AES-256-GCM":       {32, newGCM},
	"CHACHA20-POLY1305": {chacha20poly1305.KeySize, chacha20poly1305.New},
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// SupportedCiphers lists the data ciphers NewKey accepts, most preferred
// first.
func SupportedCiphers() []string {
	return []string{"AES-256-GCM", "AES-128-GCM", "AES-192-GCM", "CHACHA20-POLY1305"}
}

// Errors Seal and Open return, wrapped with detail; test with errors.Is.
var (
	ErrShort     = errors.New("data packet too short")
	ErrOpcode    = errors.New("not a data packet")
	ErrKeyID     = errors.New("packet for another key_id")
	ErrAuth      = errors.New("data packet authentication failed")
	ErrReplay    = errors.New("replayed or too old data packet id")
	ErrExhausted = errors.New("packet ids of this key exhausted; renegotiate")
)

// RenegotiateAt is the send packet id from which a key should be replaced
// (OpenVPN's PACKET_ID_WRAP_TRIGGER); at 2^32-1 Seal refuses outright.
const RenegotiateAt = 0xFF000000

type direction struct {
	aead cipher.AEAD
	iv   [implicitIVLen]byte // the implicit IV behind the packet id in the nonce
}

func newDirection(name string, keyLen int, newAEAD func([]byte) (cipher.AEAD, error), cipherSlot, hmacSlot []byte) (direction, error) {
	a, err := newAEAD(cipherSlot[:keyLen])
	if err != nil {
		return direction{}, fmt.Errorf("%s: %w", name, err)
	}
	if a.NonceSize() != nonceLen || a.Overhead() != TagLen {
		return direction{}, fmt.Errorf("%s: unexpected nonce/tag size %d/%d", name, a.NonceSize(), a.Overhead())
	}
	d := direction{aead: a}
	copy(d.iv[:], hmacSlot[:implicitIVLen])
	return d, nil
}

// Key is one key_id's data-channel state, both directions, for a client:
// it encrypts with the c2s half of the key block and decrypts with s2c.
type Key struct {
	cipher string
	keyID  uint8
	peerID int // -1: send DATA_V1

	sendMu      sync.Mutex // guards sendScratch; Seal normally has one caller
	sendScratch Scratch
	send        direction
	sentID      atomic.Uint64 // last packet id used

	// What the key protected (Usage): packets and bytes of both
	// directions, plaintext blocks per direction.
	packets, bytes, sentBlocks, recvBlocks atomic.Uint64

	recvMu      sync.Mutex // guards recvScratch and the window
	recvScratch Scratch
	recv        direction
	cbc         *cbcKey // legacy CBC+HMAC instead of the AEAD directions
	window      *replay.Window
}

// Scratch is the working space of one goroutine sealing or opening AEAD
// packets (nonce, AAD, tag). Seal and Open use the key's own under a
// mutex; SealID and OpenID take the caller's, so that several goroutines,
// each with its own Scratch, seal and open with one key in parallel.
type Scratch struct {
	nonce [nonceLen]byte
	aad   [wire.DataV2HeaderLen + PacketIDLen]byte
	tag   [TagLen]byte
}

// NewKey builds the client data-channel key for keyID from a 256-byte key
// block (from TLS-EKM or KeyBlockPRF). peerID is the pushed peer-id, which
// selects DATA_V2; -1 sends DATA_V1. Received packets may be either.
// CBC ciphers get OpenVPN's default HMAC digest, SHA1; use NewKeyAuth to
// name another.
func NewKey(cipherName string, keyID uint8, block []byte, peerID int) (*Key, error) {
	return NewKeyAuth(cipherName, "", keyID, block, peerID)
}

// NewKeyAuth is NewKey with the profile's "auth" digest (SHA1, SHA256, …),
// which only the legacy CBC ciphers use; AEAD ciphers ignore it.
func NewKeyAuth(cipherName, auth string, keyID uint8, block []byte, peerID int) (*Key, error) {
	c, ok := ciphers[cipherName]
	if !ok && !IsCBC(cipherName) {
		return nil, fmt.Errorf("data cipher %q not supported (have %v and, when the profile asks, %v)",
			cipherName, SupportedCiphers(), CBCCiphers())
	}
	if len(block) != KeyBlockLen {
		return nil, fmt.Errorf("data channel key block: %d bytes, want %d", len(block), KeyBlockLen)
	}
	if keyID > wire.KeyIDMask {
		return nil, fmt.Errorf("key_id %d out of range 0..7", keyID)
	}
	if peerID < -1 || peerID > wire.MaxPeerID {
		return nil, fmt.Errorf("peer-id %d out of range 0..%d", peerID, wire.MaxPeerID)
	}
	k := &Key{cipher: cipherName, keyID: keyID, peerID: peerID, window: replay.NewWindow(replay.DefaultSize)}
	var err error
	if !ok {
		if k.cbc, err = newCBCKey(cipherName, auth, block); err != nil {
			return nil, err
		}
		return k, nil
	}
	if k.send, err = newDirection(cipherName, c.keyLen, c.new, block[0:slotLen], block[slotLen:2*slotLen]); err != nil {
		return nil, err
	}
	if k.recv, err = newDirection(cipherName, c.keyLen, c.new, block[2*slotLen:3*slotLen], block[3*slotLen:4*slotLen]); err != nil {
		return nil, err
	}
	return k, nil
}

// Cipher is the data cipher name.
func (k *Key) Cipher() string { return k.cipher }

// KeyID is the key_id this key is used with.
func (k *Key) KeyID() uint8 { return k.keyID }

// PeerID is the peer-id sent in DATA_V2 packets, -1 for DATA_V1.
func (k *Key) PeerID() int { return k.peerID }

// headerLen is the size of op|key_id plus the peer-id if sending DATA_V2.
func (k *Key) headerLen() int {
	if k.peerID >= 0 {
		return wire.DataV2HeaderLen
	}
	return 1
}

// Overhead is the number of bytes Seal adds to a payload on the wire (for
// CBC: at most, with a whole block of padding).
func (k *Key) Overhead() int {
	if k.cbc != nil {
		return k.headerLen() + k.cbc.overhead()
	}
	return k.headerLen() + PacketIDLen + TagLen
}

// SealBufferLen is the capacity Seal needs beyond len(dst) to work without
// allocating for an n-byte payload: the packet plus room for the tag the
// AEAD first writes behind the ciphertext.
func (k *Key) SealBufferLen(n int) int { return k.Overhead() + n + TagLen }

// PacketsSent is the number of packets sealed so far.
func (k *Key) PacketsSent() uint64 { return k.sentID.Load() }

// SetReplayWindow replaces the default replay window (64 packets, no time
// limit) by OpenVPN's "replay-window size t": size packets back, and an
// older packet refused once a newer one arrived more than maxAge before
// (0: no time limit). now is the clock. Call it before the first Open.
func (k *Key) SetReplayWindow(size int, maxAge time.Duration, now func() time.Time) {
	w := replay.NewWindow(size)
	w.SetTimeLimit(maxAge, now)
	k.recvMu.Lock()
	k.window = w
	k.recvMu.Unlock()
}

// Usage is what a key has protected so far, for the key lifetime limits
// (reneg-bytes, reneg-pkts, the AEAD usage limit).
type Usage struct {
	// Packets and Bytes count data packets sealed and opened (Bytes: their
	// size on the wire), like OpenVPN's n_packets/n_bytes.
	Packets, Bytes uint64
	// SentBlocks/RecvBlocks are the 16-byte plaintext blocks encrypted or
	// decrypted; SentID/RecvID the highest packet ids used.
	SentBlocks, RecvBlocks uint64
	SentID, RecvID         uint64
}

// Usage returns the key's counters; safe at any time.
func (k *Key) Usage() Usage {
	k.recvMu.Lock()
	recvID := k.window.Highest()
	k.recvMu.Unlock()
	return Usage{
		Packets: k.packets.Load(), Bytes: k.bytes.Load(),
		SentBlocks: k.sentBlocks.Load(), RecvBlocks: k.recvBlocks.Load(),
		SentID: k.sentID.Load(), RecvID: recvID,
	}
}

// blocks is the number of 16-byte blocks n plaintext bytes take.
func blocks(n int) uint64 { return uint64(n+15) / 16 }

// NeedsRenegotiation reports that the send packet ids are running out.
func (k *Key) NeedsRenegotiation() bool { return k.sentID.Load() >= RenegotiateAt }

// Seal appends one whole data packet carrying plaintext to dst:
//
//	[op|key_id][peer-id, DATA_V2 only][packet id][tag][ciphertext]
//
// (for CBC keys the legacy layout described in cbc.go).
//
// It does not allocate when cap(dst)-len(dst) >= SealBufferLen(len(plaintext)).
// For in-place encryption plaintext may sit in dst's spare capacity exactly
// where the ciphertext goes, at offset len(dst)+Overhead(); otherwise it
// must not overlap dst's spare capacity.
func (k *Key) Seal(dst, plaintext []byte) ([]byte, error) {
	id := k.sentID.Add(1)
	if id > 0xFFFFFFFF {
		k.sentID.Store(0xFFFFFFFF)
		return dst, fmt.Errorf("seal: %w", ErrExhausted)
	}
	if k.cbc != nil {
		out, err := k.sealCBC(dst, plaintext, uint32(id))
		if err == nil {
			k.count(&k.sentBlocks, len(plaintext), len(out)-len(dst))
		}
		return out, err
	}
	k.sendMu.Lock()
	out := k.sealAEAD(&k.sendScratch, dst, plaintext, uint32(id))
	k.sendMu.Unlock()
	return out, nil
}

// Parallel says the key seals and opens with SealID and OpenID: AEAD
// keys do; a CBC key's cipher state is one per direction.
func (k *Key) Parallel() bool { return k.cbc == nil }

// ReserveIDs takes the next n send packet ids for SealID and returns the
// first; the others follow it. Packets should reach the wire in id order:
// the peer's replay window refuses what falls too far behind.
func (k *Key) ReserveIDs(n int) (uint32, error) {
	last := k.sentID.Add(uint64(n))
	if last > 0xFFFFFFFF {
		k.sentID.Store(0xFFFFFFFF)
		return 0, fmt.Errorf("seal: %w", ErrExhausted)
	}
	return uint32(last - uint64(n) + 1), nil
}

// SealID is Seal with a packet id from ReserveIDs, using s as its scratch
// space: goroutines with a Scratch each seal in parallel. AEAD keys only.
func (k *Key) SealID(s *Scratch, dst, plaintext []byte, id uint32) ([]byte, error) {
	if k.cbc != nil {
		return dst, fmt.Errorf("seal: %s keys seal one packet at a time", k.cipher)
	}
	return k.sealAEAD(s, dst, plaintext, id), nil
}

func (k *Key) sealAEAD(s *Scratch, dst, plaintext []byte, id uint32) []byte {
	start := len(dst)
	hl := k.headerLen()
	ctAt := start + hl + PacketIDLen + TagLen
	end := ctAt + len(plaintext)
	if cap(dst) < end+TagLen {
		dst = slices.Grow(dst, end+TagLen-len(dst))
	}
	out := dst[:end+TagLen]
	if k.peerID >= 0 {
		wire.AppendDataV2Header(out[start:start], k.keyID, uint32(k.peerID))
	} else {
		out[start] = wire.JoinHeader(wire.OpDataV1, k.keyID)
	}
	binary.BigEndian.PutUint32(out[start+hl:], id)
	// AAD: the header and packet id for DATA_V2, the packet id alone for V1.
	aad := out[start : start+hl+PacketIDLen]
	if k.peerID < 0 {
		aad = out[start+1 : start+1+PacketIDLen]
	}
	binary.BigEndian.PutUint32(s.nonce[:], id)
	copy(s.nonce[PacketIDLen:], k.send.iv[:])
	k.send.aead.Seal(out[ctAt:ctAt], s.nonce[:], plaintext, aad)
	// Go's AEAD writes ciphertext‖tag; OpenVPN puts the tag first.
	copy(out[ctAt-TagLen:ctAt], out[end:end+TagLen])
	k.count(&k.sentBlocks, len(plaintext), end-start)
	return out[:end]
}

// count adds one packet of plain bytes (wire bytes on the wire) to the
// usage counters.
func (k *Key) count(blk *atomic.Uint64, plain, wire int) {
	k.packets.Add(1)
	k.bytes.Add(uint64(wire))
	blk.Add(blocks(plain))
}

// Open verifies and decrypts one DATA_V1 or DATA_V2 packet for this key,
// checks its packet id against the replay window and appends the
// plaintext to dst. It does not allocate when cap(dst)-len(dst) >=
// len(packet); dst may share packet's memory (dst = packet[:0]).
func (k *Key) Open(dst, packet []byte) ([]byte, error) {
	op, hl, aadFrom, err := k.parseHeader(packet)
	if err != nil {
		return dst, err
	}
	if k.cbc != nil {
		out, err := k.openCBC(dst, packet, op, hl)
		if err == nil {
			k.count(&k.recvBlocks, len(out)-len(dst), len(packet))
		}
		return out, err
	}
	id := binary.BigEndian.Uint32(packet[hl:])
	k.recvMu.Lock()
	defer k.recvMu.Unlock()
	if !k.window.Check(uint64(id)) {
		return dst, fmt.Errorf("open %v: %w: id %d (highest %d)", op, ErrReplay, id, k.window.Highest())
	}
	out, err := k.openAEAD(&k.recvScratch, dst, packet, op, hl, aadFrom)
	if err != nil {
		return out, err
	}
	if !k.window.Accept(uint64(id)) {
		return dst, fmt.Errorf("open %v: %w: id %d", op, ErrReplay, id)
	}
	k.count(&k.recvBlocks, len(out)-len(dst), len(packet))
	return out, nil
}

// Opened is what OpenID authenticated, for Accept.
type Opened struct {
	ID           uint32
	plain, wired int
}

// OpenID verifies and decrypts like Open, using s as its scratch space
// (goroutines with a Scratch each open in parallel), but leaves the
// replay window to Accept: the caller accepts the packet, in the order
// the packets arrived, only if Accept says so. AEAD keys only.
func (k *Key) OpenID(s *Scratch, dst, packet []byte) ([]byte, Opened, error) {
	op, hl, aadFrom, err := k.parseHeader(packet)
	if err != nil {
		return dst, Opened{}, err
	}
	if k.cbc != nil {
		return dst, Opened{}, fmt.Errorf("open: %s keys open one packet at a time", k.cipher)
	}
	o := Opened{ID: binary.BigEndian.Uint32(packet[hl:]), wired: len(packet)} // before dst overwrites packet
	out, err := k.openAEAD(s, dst, packet, op, hl, aadFrom)
	if err != nil {
		return out, Opened{}, err
	}
	o.plain = len(out) - len(dst)
	return out, o, nil
}

// Accept checks an opened packet's id against the replay window and
// records it; false: a replay, or too old.
func (k *Key) Accept(o Opened) bool {
	k.recvMu.Lock()
	ok := k.window.Accept(uint64(o.ID))
	k.recvMu.Unlock()
	if ok {
		k.count(&k.recvBlocks, o.plain, o.wired)
	}
	return ok
}

// parseHeader checks a packet's opcode, key_id and (AEAD) length and
// returns the header length and where the AAD starts.
func (k *Key) parseHeader(packet []byte) (op wire.Opcode, hl, aadFrom int, err error) {
	if len(packet) < 1 {
		return 0, 0, 0, fmt.Errorf("open: %w: empty", ErrShort)
	}
	op, keyID := wire.SplitHeader(packet[0])
	switch op {
	case wire.OpDataV2:
		hl, aadFrom = wire.DataV2HeaderLen, 0
	case wire.OpDataV1:
		hl, aadFrom = 1, 1
	default:
		return op, 0, 0, fmt.Errorf("open: %w: %v", ErrOpcode, op)
	}
	if keyID != k.keyID {
		return op, 0, 0, fmt.Errorf("open: %w: got %d, key is %d", ErrKeyID, keyID, k.keyID)
	}
	if k.cbc == nil && len(packet) < hl+PacketIDLen+TagLen {
		return op, 0, 0, fmt.Errorf("open %v: %w: %d bytes", op, ErrShort, len(packet))
	}
	return op, hl, aadFrom, nil
}

// openAEAD authenticates and decrypts an AEAD packet into dst with s as
// scratch space; the replay window is the caller's.
func (k *Key) openAEAD(s *Scratch, dst, packet []byte, op wire.Opcode, hl, aadFrom int) ([]byte, error) {
	id := binary.BigEndian.Uint32(packet[hl:])
	ct := packet[hl+PacketIDLen+TagLen:]
	// Save AAD and tag first: dst may overwrite packet below.
	aadLen := hl + PacketIDLen - aadFrom
	copy(s.aad[:], packet[aadFrom:hl+PacketIDLen])
	copy(s.tag[:], packet[hl+PacketIDLen:])
	binary.BigEndian.PutUint32(s.nonce[:], id)
	copy(s.nonce[PacketIDLen:], k.recv.iv[:])

	start := len(dst)
	n := len(ct)
	if cap(dst) < start+n+TagLen {
		dst = slices.Grow(dst, n+TagLen)
	}
	buf := dst[start : start+n+TagLen]
	copy(buf, ct) // memmove: fine if buf and ct overlap
	copy(buf[n:], s.tag[:])
	pt, err := k.recv.aead.Open(buf[:0], s.nonce[:], buf, s.aad[:aadLen])
	if err != nil {
		return dst[:start], fmt.Errorf("open %v id %d: %w", op, id, ErrAuth)
	}
	return dst[:start+len(pt)], nil
}

// AEADKeyLen is the cipher key length of an AEAD data cipher; ok is false
// for ciphers that are not AEAD (legacy CBC) or unknown.
func AEADKeyLen(cipherName string) (n int, ok bool) {
	c, ok := ciphers[cipherName]
	return c.keyLen, ok
}

// NonceTailLen is the size of the implicit IV ("nonce tail") each
// direction of an AEAD key carries after its cipher key.
const NonceTailLen = implicitIVLen

// KeyBlockFromDirections rebuilds the 256-byte client key block of an
// AEAD cipher from its per-direction halves (the form the kernel's ovpn
// KEY_NEW takes): encrypt = client to server, decrypt = server to client.
// Unused bytes are zero, which NewKey ignores for AEAD ciphers.
func KeyBlockFromDirections(cipherName string, encKey, encTail, decKey, decTail []byte) ([]byte, error) {
	n, ok := AEADKeyLen(cipherName)
	if !ok {
		return nil, fmt.Errorf("data cipher %q is not an AEAD cipher", cipherName)
	}
	if len(encKey) != n || len(decKey) != n || len(encTail) != implicitIVLen || len(decTail) != implicitIVLen {
		return nil, fmt.Errorf("%s key halves: keys %d/%d bytes, nonce tails %d/%d, want %d and %d",
			cipherName, len(encKey), len(decKey), len(encTail), len(decTail), n, implicitIVLen)
	}
	b := make([]byte, KeyBlockLen)
	copy(b[0:], encKey)
	copy(b[slotLen:], encTail)
	copy(b[2*slotLen:], decKey)
	copy(b[3*slotLen:], decTail)
	return b, nil
}
