package engine

import (
	"fmt"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
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
// it to a data plane. The engine clears the key material once InstallKey
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

// newDataKey splits a key block into a DataKey.
func newDataKey(cipher, auth string, keyID uint8, block []byte, peerID int) (*DataKey, error) {
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

// clear wipes the key material.
func (k *DataKey) clear() {
	clear(k.block)
	k.Encrypt, k.Decrypt = KeyDirection{}, KeyDirection{}
}

// KeyPlane is the one narrow interface through which keys move from the
// control session to the data plane, implemented by the userspace data
// channel (userPlane) and by data channel offload (DCOPlane). The control
// session installs a renegotiated key in the secondary slot, swaps it to
// primary when it becomes active and deletes the secondary (the lame duck)
// when tran-window ends or the next key needs the slot.
type KeyPlane interface {
	InstallKey(slot KeySlot, k *DataKey) error
	SwapKeys() error
	DeleteKey(slot KeySlot) error
}

// userPlane is the userspace data channel of one attempt: its keys go to
// the attempt's dataplane.Conn, whose slots receive by key_id and whose
// primary key sends. Keepalive runs on the control loop's timers and
// traffic is counted in the session's counters as it passes.
type userPlane struct {
	a *attempt
}

func (p *userPlane) InstallKey(slot KeySlot, dk *DataKey) error {
	if slot > SlotSecondary {
		return fmt.Errorf("install key: no key slot %d", slot)
	}
	key, err := datachan.NewKeyAuth(dk.Cipher, dk.auth, dk.KeyID, dk.block, dk.PeerID)
	if err != nil {
		return fmt.Errorf("data channel key (%s): %w", dk.Cipher, err)
	}
	a := p.a
	key.SetReplayWindow(a.o.lim.replayWindow, a.o.lim.replayTime, a.c.now)
	conn := a.dataConn()
	conn.SetFraming(a.comp)
	return conn.InstallKey(dataplane.Slot(slot), key)
}

func (p *userPlane) SwapKeys() error { return p.a.dataConn().SwapKeys() }

func (p *userPlane) DeleteKey(slot KeySlot) error {
	return p.a.dataConn().DeleteKey(dataplane.Slot(slot))
}

// key returns the userspace key of a key_id, nil if it is in no slot.
func (p *userPlane) key(id uint8) *datachan.Key { return p.a.dataConn().Key(id) }
