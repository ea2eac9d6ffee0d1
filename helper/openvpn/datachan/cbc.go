package datachan

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Legacy CBC data channel (OpenVPN ≤ 2.4 servers, or servers whose
// data-ciphers hold only a CBC cipher). Encrypt-then-MAC:
//
//	[op|key_id][peer-id, DATA_V2 only][HMAC][IV 16B][CBC(packet_id ‖ payload ‖ PKCS#7 pad)]
//
// The HMAC covers IV and ciphertext; the opcode and peer-id are not
// authenticated (that is the protocol, not a shortcut). It is offered only
// when the profile asks for a CBC cipher: AEAD is preferred everywhere.

// cbcBlockLen is the AES block (and IV) size.
const cbcBlockLen = aes.BlockSize

var cbcCiphers = map[string]int{ // name → key length
	"AES-128-CBC": 16,
	"AES-192-CBC": 24,
	"AES-256-CBC": 32,
}

var digests = map[string]func() hash.Hash{
	"SHA1":   sha1.New,
	"SHA224": sha256.New224,
	"SHA256": sha256.New,
	"SHA384": sha512.New384,
	"SHA512": sha512.New,
}

// IsCBC reports whether name is a CBC data cipher NewKeyAuth accepts.
// Such ciphers are never offered unless a profile names them.
func IsCBC(name string) bool {
	_, ok := cbcCiphers[strings.ToUpper(name)]
	return ok
}

// CBCCiphers lists the legacy CBC data ciphers, strongest first.
func CBCCiphers() []string { return []string{"AES-256-CBC", "AES-192-CBC", "AES-128-CBC"} }

// ivSetter is implemented by Go's CBC modes; it lets one BlockMode be
// reused per packet instead of allocating a new one.
type ivSetter interface{ SetIV([]byte) }

type cbcDirection struct {
	mode cipher.BlockMode
	mac  hash.Hash
	sum  [sha512.Size]byte // scratch for the computed HMAC
	iv   [cbcBlockLen]byte // scratch IV
}

func newCBCDirection(newMode func(cipher.Block, []byte) cipher.BlockMode, cipherKey, macKey []byte, newHash func() hash.Hash) (cbcDirection, error) {
	b, err := aes.NewCipher(cipherKey)
	if err != nil {
		return cbcDirection{}, err
	}
	d := cbcDirection{mode: newMode(b, make([]byte, cbcBlockLen)), mac: hmac.New(newHash, macKey)}
	if _, ok := d.mode.(ivSetter); !ok {
		return cbcDirection{}, fmt.Errorf("CBC mode %T cannot reset its IV", d.mode)
	}
	return d, nil
}

// cbcKey is the CBC half of a Key.
type cbcKey struct {
	macLen int
	send   cbcDirection
	recv   cbcDirection
	// ivGen makes the per-packet IVs unpredictable without a syscall per
	// packet: IV = AES(ivKey, packet id), ivKey random per Key. Tests
	// replace it to get fixed vectors.
	ivGen func(iv []byte, id uint32)
}

func newCBCKey(cipherName, auth string, block []byte) (*cbcKey, error) {
	keyLen := cbcCiphers[cipherName]
	auth = strings.ToUpper(auth)
	if auth == "" {
		auth = "SHA1" // OpenVPN's default --auth
	}
	newHash, ok := digests[auth]
	if !ok {
		return nil, fmt.Errorf("auth digest %q not supported for %s (have SHA1, SHA224, SHA256, SHA384, SHA512)", auth, cipherName)
	}
	macLen := newHash().Size()
	k := &cbcKey{macLen: macLen}
	var err error
	if k.send, err = newCBCDirection(cipher.NewCBCEncrypter, block[0:keyLen], block[slotLen:slotLen+macLen], newHash); err != nil {
		return nil, fmt.Errorf("%s: %w", cipherName, err)
	}
	if k.recv, err = newCBCDirection(cipher.NewCBCDecrypter, block[2*slotLen:2*slotLen+keyLen], block[3*slotLen:3*slotLen+macLen], newHash); err != nil {
		return nil, fmt.Errorf("%s: %w", cipherName, err)
	}
	var ivKey [32]byte
	if _, err := rand.Read(ivKey[:]); err != nil {
		return nil, fmt.Errorf("CBC IV key: %w", err)
	}
	ivBlock, err := aes.NewCipher(ivKey[:])
	if err != nil {
		return nil, err
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("CBC IV nonce: %w", err)
	}
	k.ivGen = func(iv []byte, id uint32) {
		copy(iv, nonce[:])
		binary.BigEndian.PutUint64(iv[8:], uint64(id))
		ivBlock.Encrypt(iv, iv)
	}
	return k, nil
}

// cbcOverhead is what sealing adds besides the header, at most (a full
// padding block).
func (c *cbcKey) overhead() int { return c.macLen + cbcBlockLen + PacketIDLen + cbcBlockLen }

func (k *Key) sealCBC(dst, plaintext []byte, id uint32) ([]byte, error) {
	c := k.cbc
	start := len(dst)
	hl := k.headerLen()
	macAt := start + hl
	ivAt := macAt + c.macLen
	ctAt := ivAt + cbcBlockLen
	ptLen := PacketIDLen + len(plaintext)
	pad := cbcBlockLen - ptLen%cbcBlockLen
	end := ctAt + ptLen + pad
	if cap(dst) < end {
		dst = slices.Grow(dst, end-len(dst))
	}
	out := dst[:end]
	// The payload first: it may sit in dst's spare capacity.
	copy(out[ctAt+PacketIDLen:], plaintext)
	binary.BigEndian.PutUint32(out[ctAt:], id)
	for i := ctAt + ptLen; i < end; i++ {
		out[i] = byte(pad)
	}
	if k.peerID >= 0 {
		wire.AppendDataV2Header(out[start:start], k.keyID, uint32(k.peerID))
	} else {
		out[start] = wire.JoinHeader(wire.OpDataV1, k.keyID)
	}

	k.sendMu.Lock()
	defer k.sendMu.Unlock()
	s := &c.send
	c.ivGen(out[ivAt:ctAt], id)
	s.mode.(ivSetter).SetIV(out[ivAt:ctAt])
	s.mode.CryptBlocks(out[ctAt:end], out[ctAt:end])
	s.mac.Reset()
	s.mac.Write(out[ivAt:end])
	s.mac.Sum(out[macAt:macAt])
	return out, nil
}

func (k *Key) openCBC(dst, packet []byte, op wire.Opcode, hl int) ([]byte, error) {
	c := k.cbc
	macAt := hl
	ivAt := macAt + c.macLen
	ctAt := ivAt + cbcBlockLen
	if len(packet) < ctAt+cbcBlockLen {
		return dst, fmt.Errorf("open %v: %w: %d bytes", op, ErrShort, len(packet))
	}
	ct := packet[ctAt:]
	if len(ct)%cbcBlockLen != 0 {
		return dst, fmt.Errorf("open %v: %w: ciphertext of %d bytes is not whole blocks", op, ErrShort, len(ct))
	}

	k.recvMu.Lock()
	defer k.recvMu.Unlock()
	r := &c.recv
	// Encrypt-then-MAC: nothing is decrypted before the HMAC checks out.
	r.mac.Reset()
	r.mac.Write(packet[ivAt:])
	sum := r.mac.Sum(r.sum[:0])
	if !hmac.Equal(sum, packet[macAt:ivAt]) {
		return dst, fmt.Errorf("open %v: %w: HMAC mismatch", op, ErrAuth)
	}
	copy(r.iv[:], packet[ivAt:ctAt])

	start := len(dst)
	n := len(ct)
	if cap(dst) < start+n {
		dst = slices.Grow(dst, n)
	}
	buf := dst[start : start+n]
	copy(buf, ct) // memmove: dst may share packet's memory
	r.mode.(ivSetter).SetIV(r.iv[:])
	r.mode.CryptBlocks(buf, buf)

	pad := int(buf[n-1])
	if pad < 1 || pad > cbcBlockLen || n-pad < PacketIDLen {
		return dst[:start], fmt.Errorf("open %v: %w: bad padding", op, ErrAuth)
	}
	for _, b := range buf[n-pad:] {
		if int(b) != pad {
			return dst[:start], fmt.Errorf("open %v: %w: bad padding", op, ErrAuth)
		}
	}
	id := binary.BigEndian.Uint32(buf)
	if !k.window.Accept(uint64(id)) {
		return dst[:start], fmt.Errorf("open %v: %w: id %d (highest %d)", op, ErrReplay, id, k.window.Highest())
	}
	m := copy(buf, buf[PacketIDLen:n-pad])
	return dst[:start+m], nil
}
