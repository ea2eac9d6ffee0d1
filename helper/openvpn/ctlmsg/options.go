package ctlmsg

import (
	"strconv"
	"strings"
)

// OptionsParams describes the local configuration summarised in the OCC
// options string. OpenVPN servers only compare it for warnings and, for
// peers that cannot negotiate, take the cipher from it; old servers want
// "dev-type tun" to be present before they push anything.
type OptionsParams struct {
	DevType string // "tun" (default) or "tap"
	TunMTU  int    // 1500 when 0
	// LinkMTU is the value OpenVPN would compute for the outer packet;
	// when 0 it is estimated from TunMTU, the cipher and the transport.
	LinkMTU int
	TCP     bool // proto TCPv4_CLIENT instead of UDPv4 (the OCC string never says v6)
	// Cipher is the profile's "cipher" value; it is announced only when
	// CipherAnnounced is true (OpenVPN 2.6 announces it only when it is
	// also in data-ciphers). Empty means the 2.x default BF-CBC.
	Cipher          string
	CipherAnnounced bool
	Auth            string // profile "auth", SHA1 when empty
	// KeyDirection is the tls-auth key direction (-1 = bidirectional or
	// no tls-auth). It is written as "keydir N".
	KeyDirection int
	TLSAuth      bool // "tls-auth" appears (not for tls-crypt)
	CompFraming  bool // any comp-lzo/compress framing is configured
}

// aeadCiphers maps the AEAD ciphers to their key size in bits.
var aeadCiphers = map[string]int{
	"AES-128-GCM": 128, "AES-192-GCM": 192, "AES-256-GCM": 256, "CHACHA20-POLY1305": 256,
}

// cbcCiphers maps the CBC ciphers to key and block size in bytes.
var cbcCiphers = map[string][2]int{
	"AES-128-CBC": {16, 16}, "AES-192-CBC": {24, 16}, "AES-256-CBC": {32, 16},
	"BF-CBC": {16, 8}, "DES-EDE3-CBC": {24, 8},
	"CAMELLIA-128-CBC": {16, 16}, "CAMELLIA-256-CBC": {32, 16},
}

var digestSizes = map[string]int{
	"MD5": 16, "SHA1": 20, "SHA224": 28, "SHA256": 32, "SHA384": 48, "SHA512": 64,
}

// OptionsString renders the OCC string the way OpenVPN 2.6 clients do:
// V4,dev-type tun,link-mtu N,tun-mtu N,proto UDPv4[,comp-lzo][,keydir N]
// [,cipher C],auth A,keysize K[,tls-auth],key-method 2,tls-client
func OptionsString(p OptionsParams) string {
	dev := p.DevType
	if dev == "" {
		dev = "tun"
	}
	tunMTU := p.TunMTU
	if tunMTU <= 0 {
		tunMTU = 1500
	}
	cipher := strings.ToUpper(p.Cipher)
	if cipher == "" {
		cipher = "BF-CBC"
	}
	auth := strings.ToUpper(p.Auth)
	if auth == "" {
		auth = "SHA1"
	}
	// OpenVPN names AEAD ciphers' digest "[null-digest]" and uses the key
	// size of the cipher; for BF-CBC it pretends "none" with 128 bits.
	authOut, keysize := auth, 0
	if bits, ok := aeadCiphers[cipher]; ok {
		authOut, keysize = "[null-digest]", bits
	} else if c, ok := cbcCiphers[cipher]; ok {
		keysize = c[0] * 8
	} else if cipher == "NONE" {
		keysize = 0
	}
	link := p.LinkMTU
	if link <= 0 {
		link = estimateLinkMTU(tunMTU, cipher, auth, p)
	}

	var b strings.Builder
	b.WriteString("V4,dev-type ")
	b.WriteString(dev)
	b.WriteString(",link-mtu ")
	b.WriteString(strconv.Itoa(link))
	b.WriteString(",tun-mtu ")
	b.WriteString(strconv.Itoa(tunMTU))
	if p.TCP {
		b.WriteString(",proto TCPv4_CLIENT")
	} else {
		b.WriteString(",proto UDPv4")
	}
	if p.CompFraming {
		b.WriteString(",comp-lzo")
	}
	if p.TLSAuth && (p.KeyDirection == 0 || p.KeyDirection == 1) {
		b.WriteString(",keydir ")
		b.WriteString(strconv.Itoa(p.KeyDirection))
	}
	if p.CipherAnnounced {
		b.WriteString(",cipher ")
		b.WriteString(cipher)
	}
	b.WriteString(",auth ")
	b.WriteString(authOut)
	b.WriteString(",keysize ")
	b.WriteString(strconv.Itoa(keysize))
	if p.TLSAuth {
		b.WriteString(",tls-auth")
	}
	b.WriteString(",key-method 2,tls-client")
	return b.String()
}

// estimateLinkMTU follows OpenVPN's calc_options_string_link_mtu for the
// cases a client meets: opcode byte, packet id, AEAD tag or CBC
// IV+padding+HMAC, TCP length prefix, one byte of compression framing.
// The server only warns on a mismatch, so exactness is nice, not vital.
func estimateLinkMTU(tunMTU int, cipher, auth string, p OptionsParams) int {
	n := tunMTU + 1 + 4 // opcode, packet id
	if p.TCP {
		n += 2
	}
	if p.CompFraming {
		n++
	}
	if _, ok := aeadCiphers[cipher]; ok {
		return n + 16
	}
	if c, ok := cbcCiphers[cipher]; ok {
		n += c[1] + c[1] // IV + worst-case padding
	}
	if d, ok := digestSizes[auth]; ok {
		n += d
	}
	return n
}
