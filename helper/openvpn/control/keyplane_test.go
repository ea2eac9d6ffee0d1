package control

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
	half := datachan.KeyBlockLen / 2
	sb := testKeyMaterial(t, 3).block
	srv, err := datachan.NewKey(dk.Cipher, 3, append(append([]byte(nil), sb[half:]...), sb[:half]...), 0) // directions swapped
	if err != nil {
		t.Fatal(err)
	}
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
	dk.Clear()
	if dk.block[0] != 0 || dk.block[255] != 0 || dk.Encrypt.CipherKey != nil {
		t.Fatal("clear left key material")
	}
	cbc, err := NewDataKey("AES-256-CBC", "SHA256", 1, make([]byte, datachan.KeyBlockLen), 0)
	if err != nil {
		t.Fatal(err)
	}
	if cbc.AEAD() {
		t.Fatal("a CBC key has a kernel (AEAD) form")
	}
}
