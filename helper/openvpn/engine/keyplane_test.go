package engine

import (
	"bytes"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
)

// The kernel form of a key (cipher key and nonce tail per direction) is
// enough to rebuild a key that talks to the server in both directions.
func TestDataKeyKernelForm(t *testing.T) {
	dk := testKeyMaterial(t, 3)
	if !dk.AEAD() || len(dk.Encrypt.CipherKey) != 32 || len(dk.Encrypt.NonceTail) != 8 || len(dk.Decrypt.NonceTail) != 8 {
		t.Fatalf("AES-256-GCM kernel form: %d-byte key, %d/%d-byte nonce tails", len(dk.Encrypt.CipherKey), len(dk.Encrypt.NonceTail), len(dk.Decrypt.NonceTail))
	}
	block, err := datachan.KeyBlockFromDirections(dk.Cipher, dk.Encrypt.CipherKey, dk.Encrypt.NonceTail, dk.Decrypt.CipherKey, dk.Decrypt.NonceTail)
	if err != nil {
		t.Fatal(err)
	}
	client, err := datachan.NewKey(dk.Cipher, dk.KeyID, block, dk.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	srv := testServerKey(t, 3)
	pkt, err := client.Seal(nil, []byte("to the server"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := srv.Open(nil, pkt); err != nil || !bytes.Equal(p, []byte("to the server")) {
		t.Fatalf("server opens the rebuilt key's packet: %q, %v", p, err)
	}
	pkt, err = srv.Seal(nil, []byte("to the client"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := client.Open(nil, pkt); err != nil || !bytes.Equal(p, []byte("to the client")) {
		t.Fatalf("rebuilt key opens the server's packet: %q, %v", p, err)
	}
	dk.clear()
	if dk.block[0] != 0 || dk.block[255] != 0 || dk.Encrypt.CipherKey != nil {
		t.Fatal("clear left key material")
	}
	cbc, err := newDataKey("AES-256-CBC", "SHA256", 1, testKeyBlock(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if cbc.AEAD() {
		t.Fatal("a CBC key has a kernel (AEAD) form")
	}
}

// The userspace plane: the primary slot sends, both slots receive by
// key_id, a swap changes the sender, a delete stops receiving.
func TestUserPlaneSlots(t *testing.T) {
	r := newTimerRig(t, true, "reneg-sec 0")
	a := r.a
	if k := a.dp.SendKey(); k == nil || k.KeyID() != 0 {
		t.Fatal("key 0 in the primary slot does not send")
	}
	if err := a.plane.SwapKeys(); err == nil {
		t.Fatal("swap with an empty secondary slot accepted")
	}
	k1 := &keyState{id: 1}
	if err := a.installKey(SlotSecondary, k1, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	if a.conn.RecvKey(0) == nil || a.conn.RecvKey(1) == nil || a.dp.SendKey().KeyID() != 0 {
		t.Fatal("a secondary key must receive but not send")
	}
	if err := a.plane.SwapKeys(); err != nil {
		t.Fatal(err)
	}
	if a.dp.SendKey().KeyID() != 1 || k1.dataKey == nil || k1.cipher != "AES-256-GCM" {
		t.Fatal("after the swap key 1 must send")
	}
	if err := a.plane.DeleteKey(SlotSecondary); err != nil {
		t.Fatal(err)
	}
	if a.conn.RecvKey(0) != nil || a.conn.RecvKey(1) == nil {
		t.Fatal("the deleted secondary (key 0) still receives")
	}
}
