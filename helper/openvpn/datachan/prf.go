package datachan

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"hash"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// PRFInput is the key material both sides exchanged in their key-method 2
// messages, plus the two session ids, from which servers without TLS-EKM
// derive the key block.
type PRFInput struct {
	PreMaster                        [48]byte // client only
	ClientRandom1, ClientRandom2     [32]byte
	ServerRandom1, ServerRandom2     [32]byte
	ClientSessionID, ServerSessionID wire.SessionID
}

// KeyBlockPRF derives the 256-byte key block the legacy way (OpenVPN ≤ 2.5
// servers, or servers that did not push tls-ekm), with the TLS 1.0 PRF:
//
//	master = PRF(pre_master, "OpenVPN master secret", c.random1 ‖ s.random1)[:48]
//	block  = PRF(master, "OpenVPN key expansion",
//	             c.random2 ‖ s.random2 ‖ client sid ‖ server sid)[:256]
func KeyBlockPRF(in *PRFInput) []byte {
	seed := make([]byte, 0, 32+32+8+8)
	seed = append(seed, in.ClientRandom1[:]...)
	seed = append(seed, in.ServerRandom1[:]...)
	master := tls10PRF(in.PreMaster[:], "OpenVPN master secret", seed, 48)

	seed = seed[:0]
	seed = append(seed, in.ClientRandom2[:]...)
	seed = append(seed, in.ServerRandom2[:]...)
	seed = append(seed, in.ClientSessionID[:]...)
	seed = append(seed, in.ServerSessionID[:]...)
	block := tls10PRF(master, "OpenVPN key expansion", seed, KeyBlockLen)
	clear(master)
	return block
}

// tls10PRF is the TLS 1.0/1.1 PRF (RFC 2246 §5): P_MD5 over the first half
// of the secret XOR P_SHA1 over the second half (halves overlap by one
// byte when the length is odd).
func tls10PRF(secret []byte, label string, seed []byte, n int) []byte {
	labelSeed := append([]byte(label), seed...)
	half := (len(secret) + 1) / 2
	out := pHash(md5.New, secret[:half], labelSeed, n)
	x := pHash(sha1.New, secret[len(secret)-half:], labelSeed, n)
	for i := range out {
		out[i] ^= x[i]
	}
	return out
}

// pHash is P_hash from RFC 2246: HMAC(secret, A(i) ‖ seed) for
// A(0) = seed, A(i) = HMAC(secret, A(i-1)), concatenated to n bytes.
func pHash(h func() hash.Hash, secret, seed []byte, n int) []byte {
	mac := hmac.New(h, secret)
	out := make([]byte, 0, n+mac.Size())
	mac.Write(seed)
	a := mac.Sum(nil)
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:n]
}
