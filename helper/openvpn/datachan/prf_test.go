package datachan

import (
	"bytes"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// The expected key block was computed independently with OpenSSL 3's
// TLS1-PRF KDF (digest MD5-SHA1), in two steps:
//
//	openssl kdf -keylen 48 -kdfopt digest:MD5-SHA1 -kdfopt hexsecret:<pre_master>
//	  -kdfopt hexseed:<"OpenVPN master secret" ‖ c.random1 ‖ s.random1> TLS1-PRF
//	openssl kdf -keylen 256 -kdfopt digest:MD5-SHA1 -kdfopt hexsecret:<master>
//	  -kdfopt hexseed:<"OpenVPN key expansion" ‖ c.random2 ‖ s.random2 ‖ c.sid ‖ s.sid> TLS1-PRF
//
// with pre_master = 00..2f, c.random1 = 40..5f, s.random1 = 60..7f,
// c.random2 = 80..9f, s.random2 = a0..bf and the session ids below.
const prfVector = "648a9f78ddd67c74e4970489feff855ccadc51759ef0b2e3d9423ce166252380" +
	"cb9d9b8382512b06d5b7b332846f0e72c0fb052a5e7ad3f95a2a5077ca6557c3" +
	"f76ceafa61c554d52e9bec57972f30f2c89d55f7cf23c25edefefc9622c546b1" +
	"9b8032f2b0bccfe324b01a094a6d2f7bbaea65b906bfbfda468fcc9843cdc045" +
	"2a899c557b56910238e7f406027156515b9ca698bccf334c09fe44f65067b181" +
	"21b4e3f7a6b3b569fc82622b0129c5c7b88a3f7c3866939c5db11837de0e6da0" +
	"81acf6a33ce4d6026a35becb954ab17ef5f12295b698e05a9056e30fd620653d" +
	"81d376104a8babedc911d7c222c247a16353d23acc39d330947fde6bab11b081"

const prfMasterVector = "0520ed5bef47cd2c1a5bc0e84254a42563fd7fd5caf5ccac" +
	"49be59e7a71461ae9c6876df8467a4fa34cbe95fdc22977f"

func prfTestInput() *PRFInput {
	in := &PRFInput{
		ClientSessionID: wire.SessionID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88},
		ServerSessionID: wire.SessionID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8},
	}
	fill := func(b []byte, from byte) {
		for i := range b {
			b[i] = from + byte(i)
		}
	}
	fill(in.PreMaster[:], 0x00)
	fill(in.ClientRandom1[:], 0x40)
	fill(in.ServerRandom1[:], 0x60)
	fill(in.ClientRandom2[:], 0x80)
	fill(in.ServerRandom2[:], 0xa0)
	return in
}

func TestKeyBlockPRF(t *testing.T) {
	in := prfTestInput()
	seed := append(in.ClientRandom1[:], in.ServerRandom1[:]...)
	if got := tls10PRF(in.PreMaster[:], "OpenVPN master secret", seed, 48); !bytes.Equal(got, unhex(t, prfMasterVector)) {
		t.Fatalf("master secret %x", got)
	}
	got := KeyBlockPRF(in)
	if !bytes.Equal(got, unhex(t, prfVector)) {
		t.Fatalf("key block\n%x\nwant\n%s", got, prfVector)
	}
	// The block must be usable as is.
	if _, err := NewKey("AES-256-GCM", 0, got, 0); err != nil {
		t.Fatal(err)
	}
	// Swapping the session ids changes the block (their order matters).
	in.ClientSessionID, in.ServerSessionID = in.ServerSessionID, in.ClientSessionID
	if bytes.Equal(KeyBlockPRF(in), got) {
		t.Fatal("session id order ignored")
	}
}

func TestTLS10PRFOddSecret(t *testing.T) {
	// With an odd-length secret both halves share the middle byte; changing
	// it must change both P_MD5 and P_SHA1 inputs (so the output).
	s := []byte{1, 2, 3, 4, 5}
	a := tls10PRF(s, "l", nil, 20)
	s[2] ^= 1
	if bytes.Equal(a, tls10PRF(s, "l", nil, 20)) {
		t.Fatal("middle byte ignored")
	}
}
