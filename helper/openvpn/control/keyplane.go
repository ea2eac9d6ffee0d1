package control

import (
	"fmt"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
)

// KeySlot is where a data-channel key sits in a data plane, as in the
// kernel's ovpn module: the primary key encrypts and decrypts, the
// secondary only decrypts (a key about to become primary, or the lame duck
// after a swap).
type KeySlot uint8

const (
	SlotPrimary   KeySlot = 0
	SlotSecondary KeySlot = 1
)

func (s KeySlot) String() string {
	if s == SlotPrimary {
		return "primary"
	}
	return "secondary"
}

// KeyDirection is one direction of an AEAD data key: the cipher key and
// the 8-byte implicit IV ("nonce tail") the packet id is prepended to.
type KeyDirection struct {
	CipherKey []byte
	NonceTail []byte
}

// DataKey is one negotiated data-channel key as the control session hands
// it to a data plane. The session clears the key material once InstallKey
// returns, so a plane copies what it keeps.
type DataKey struct {
	PeerID int // pushed peer-id; -1: none (DATA_V1)
	KeyID  uint8
	Cipher string // data cipher name as OpenVPN spells it (AES-256-GCM, …)
	// Encrypt (client to server) and Decrypt (server to client) are set
	// for AEAD ciphers only: what the kernel's KEY_NEW carries.
	Encrypt, Decrypt KeyDirection

	auth  string // digest of the legacy CBC ciphers
	block []byte // the whole key block; the userspace plane builds from it
}

// NewDataKey splits a key block (datachan.KeyBlockLen bytes) into a
// DataKey; the block is copied.
func NewDataKey(cipher, auth string, keyID uint8, block []byte, peerID int) (*DataKey, error) {
	if len(block) != datachan.KeyBlockLen {
		return nil, fmt.Errorf("data channel key block: %d bytes, want %d", len(block), datachan.KeyBlockLen)
	}
	k := &DataKey{PeerID: peerID, KeyID: keyID, Cipher: cipher, auth: auth, block: append([]byte(nil), block...)}
	if n, ok := datachan.AEADKeyLen(cipher); ok {
		const slot = datachan.KeyBlockLen / 4
		k.Encrypt = KeyDirection{CipherKey: k.block[0:n], NonceTail: k.block[slot : slot+datachan.NonceTailLen]}
		k.Decrypt = KeyDirection{CipherKey: k.block[2*slot : 2*slot+n], NonceTail: k.block[3*slot : 3*slot+datachan.NonceTailLen]}
	}
	return k, nil
}

// AEAD says the key has the per-direction form a kernel data plane takes.
func (k *DataKey) AEAD() bool { return k.Encrypt.CipherKey != nil }

// UserspaceKey builds the key of a userspace data channel from the whole
// key block (any cipher, AEAD or CBC with its digest).
func (k *DataKey) UserspaceKey() (*datachan.Key, error) {
	return datachan.NewKeyAuth(k.Cipher, k.auth, k.KeyID, k.block, k.PeerID)
}

// Clear wipes the key material.
func (k *DataKey) Clear() {
	clear(k.block)
	k.Encrypt, k.Decrypt = KeyDirection{}, KeyDirection{}
}

// KeyPlane is the one narrow interface through which keys move from the
// control session to the data plane, implemented by the userspace data
// channel and by data channel offload (the engine's DCOPlane). The control
// session installs a renegotiated key in the secondary slot, swaps it to
// primary when it becomes active and deletes the secondary (the lame duck)
// when tran-window ends or the next key needs the slot.
type KeyPlane interface {
	InstallKey(slot KeySlot, k *DataKey) error
	SwapKeys() error
	DeleteKey(slot KeySlot) error
}

// Meter reports how much a data key was used, for reneg-bytes, reneg-pkts
// and the AEAD usage limits (*datachan.Key is one).
type Meter interface {
	Usage() datachan.Usage
}

// MeteredPlane is a KeyPlane that counts the use of its keys (the
// userspace one). An offloaded plane does not: reneg-bytes/pkts do not
// apply to DCO, as in OpenVPN (the kernel asks for a new key near
// packet-id exhaustion).
type MeteredPlane interface {
	KeyPlane
	// Meter returns the meter of the key with that key_id, nil if the
	// plane holds no such key.
	Meter(keyID uint8) Meter
}
