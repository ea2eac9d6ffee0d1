package dco

import (
	"bytes"
	"strings"
	"testing"
)

func TestKeyConfigRoundTrip(t *testing.T) {
	k := KeyConf{PeerID: 0x123456, KeyID: 5, Cipher: CipherChaCha20Poly1305,
		Encrypt: KeyDir{Key: bytes.Repeat([]byte{1}, 32), NonceTail: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Decrypt: KeyDir{Key: bytes.Repeat([]byte{2}, 32), NonceTail: [8]byte{9, 9, 9, 9, 9, 9, 9, 9}}}
	b := MarshalKeyConfig(k)
	got, err := UnmarshalKeyConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.PeerID != k.PeerID || got.KeyID != k.KeyID || got.Cipher != k.Cipher ||
		!bytes.Equal(got.Encrypt.Key, k.Encrypt.Key) || !bytes.Equal(got.Decrypt.Key, k.Decrypt.Key) ||
		got.Encrypt.NonceTail != k.Encrypt.NonceTail || got.Decrypt.NonceTail != k.Decrypt.NonceTail {
		t.Fatalf("round trip: %+v, want %+v", got, k)
	}
	// key_id 5 (field 1, varint) is the message's first two bytes.
	if b[0] != 0x08 || b[1] != 5 {
		t.Errorf("encoding starts % x, want 08 05", b[:2])
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "key_id missing"},
		{"truncated", b[:len(b)-3], "truncated"},
		{"key_id 8", append([]byte{0x08, 8}, b[2:]...), "out of range"},
		{"fixed64 field", append([]byte{0x09, 0, 0, 0, 0, 0, 0, 0, 0}, b...), "wire type 1"},
	} {
		if _, err := UnmarshalKeyConfig(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	bad := k
	bad.Encrypt.Key = nil
	raw := MarshalKeyConfig(bad)
	if _, err := UnmarshalKeyConfig(raw); err == nil || !strings.Contains(err.Error(), "encrypt") {
		t.Errorf("an empty encrypt key with cipher_key_size 0: %v", err)
	}
}
