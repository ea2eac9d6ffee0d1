package engine

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/scrypt"
	"software.sslmate.com/src/go-pkcs12"
)

// ErrKeyPassphraseNeeded: the profile's private key (PEM or PKCS#12) is
// encrypted and Credentials.KeyPassphrase is empty. The caller should ask
// the user and try again.
var ErrKeyPassphraseNeeded = errors.New("private key is encrypted: passphrase needed")

// ErrKeyPassphraseWrong: Credentials.KeyPassphrase does not open the
// profile's private key (PEM or PKCS#12).
var ErrKeyPassphraseWrong = errors.New("private key passphrase is wrong")

// clientIdentity is the client certificate chain and key from the profile,
// and the CA certificates a PKCS#12 bundle brought along.
type clientIdentity struct {
	cert   *tls.Certificate // nil: no client certificate
	p12CAs []*x509.Certificate
}

// loadClientIdentity builds the client certificate from cert+key (PEM, the
// key possibly encrypted) or from a base64 PKCS#12 bundle, with extra-certs
// appended to the chain sent to the server.
func loadClientIdentity(p tlsParams) (clientIdentity, error) {
	var id clientIdentity
	extra, err := parseCerts(p.ExtraCerts)
	if err != nil {
		return id, fmt.Errorf("extra-certs: %w", err)
	}
	switch {
	case p.PKCS12 != "":
		if p.Cert != "" || p.Key != "" {
			return id, errors.New("pkcs12: give either pkcs12 or cert and key, not both")
		}
		cert, cas, err := loadPKCS12(p.PKCS12, p.KeyPassphrase, p.CA != "")
		if err != nil {
			return id, err
		}
		id.cert, id.p12CAs = &cert, cas
	case p.Cert != "" || p.Key != "":
		if p.Cert == "" || p.Key == "" {
			return id, errors.New("client certificate and key must be given together")
		}
		cert, err := loadKeyPairPass(p.Cert, p.Key, p.KeyPassphrase)
		if err != nil {
			return id, err
		}
		id.cert = &cert
	default:
		if len(extra) > 0 {
			return id, errors.New("extra-certs without a client certificate (cert or pkcs12)")
		}
		return id, nil
	}
	for _, c := range extra {
		id.cert.Certificate = append(id.cert.Certificate, c.Raw)
	}
	return id, nil
}

// loadKeyPair is loadKeyPairPass for an unencrypted key.
func loadKeyPair(certPEM, keyPEM string) (tls.Certificate, error) {
	return loadKeyPairPass(certPEM, keyPEM, "")
}

// loadKeyPairPass accepts PKCS#8, PKCS#1 (RSA) and SEC1 (EC) private keys,
// plain or encrypted (PKCS#8 PBES2 "ENCRYPTED PRIVATE KEY", or legacy PEM
// encryption with Proc-Type/DEK-Info headers). The certificate PEM may
// carry extra chain certificates after the leaf.
func loadKeyPairPass(certPEM, keyPEM, passphrase string) (tls.Certificate, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cert: %w", err)
	}
	if len(certs) == 0 {
		return tls.Certificate{}, errors.New("cert: no certificate in the profile")
	}
	key, err := parsePrivateKeyPEM(keyPEM, passphrase)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key: %w", err)
	}
	return makeTLSCertificate(certs[0], certs[1:], key)
}

func makeTLSCertificate(leaf *x509.Certificate, chain []*x509.Certificate, key crypto.Signer) (tls.Certificate, error) {
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return tls.Certificate{}, fmt.Errorf("key does not match the certificate %q", leaf.Subject.String())
	}
	raw := [][]byte{leaf.Raw}
	for _, c := range chain {
		raw = append(raw, c.Raw)
	}
	return tls.Certificate{Certificate: raw, PrivateKey: key, Leaf: leaf}, nil
}

// keyPEMEncrypted reports whether a PEM private key needs a passphrase.
func keyPEMEncrypted(keyPEM string) bool {
	b, _ := pem.Decode([]byte(keyPEM))
	return b != nil && (b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"))
}

func parsePrivateKeyPEM(keyPEM, passphrase string) (crypto.Signer, error) {
	kb, _ := pem.Decode([]byte(keyPEM))
	if kb == nil {
		return nil, errors.New("no PEM block")
	}
	der := kb.Bytes
	typ := kb.Type
	switch {
	case typ == "ENCRYPTED PRIVATE KEY":
		if passphrase == "" {
			return nil, ErrKeyPassphraseNeeded
		}
		plain, err := decryptPKCS8(der, passphrase)
		if err != nil {
			return nil, err
		}
		der, typ = plain, "PRIVATE KEY"
	case strings.Contains(kb.Headers["Proc-Type"], "ENCRYPTED"):
		if passphrase == "" {
			return nil, ErrKeyPassphraseNeeded
		}
		// Legacy OpenSSL PEM encryption (MD5-based key derivation) is weak
		// and deprecated in Go, but old easy-rsa keys use it.
		plain, err := x509.DecryptPEMBlock(kb, []byte(passphrase)) //nolint:staticcheck // legacy PEM encryption still in use
		if err != nil {
			if errors.Is(err, x509.IncorrectPasswordError) {
				return nil, ErrKeyPassphraseWrong
			}
			return nil, fmt.Errorf("legacy PEM encryption: %w", err)
		}
		k, err := parsePrivateKeyDER(typ, plain)
		if err != nil {
			// Without an integrity check a wrong passphrase usually shows
			// as garbage that does not parse.
			return nil, ErrKeyPassphraseWrong
		}
		return k, nil
	}
	return parsePrivateKeyDER(typ, der)
}

func parsePrivateKeyDER(typ string, der []byte) (crypto.Signer, error) {
	switch typ {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("PKCS#8: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("PKCS#8 key of type %T cannot sign", k)
		}
		return s, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("PKCS#1: %w", err)
		}
		return k, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("SEC1: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported PEM type %q", typ)
}

// PKCS#8 encryption (RFC 8018 PBES2) structures.
type pkcs8Encrypted struct {
	Algorithm pkix8AlgID
	Data      []byte
}

type pkix8AlgID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type pbes2Params struct {
	KDF    pkix8AlgID
	Scheme pkix8AlgID
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int        `asn1:"optional"`
	PRF        pkix8AlgID `asn1:"optional"`
}

type scryptParams struct {
	Salt      []byte
	Cost      int
	BlockSize int
	Parallel  int
	KeyLength int `asn1:"optional"`
}

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// Bounds on the work an untrusted profile can make us do.
const (
	maxPBKDF2Iterations = 10_000_000
	maxScryptCost       = 1 << 20
	maxScryptMemory     = 64 << 20 // bytes (128·r·N); OpenSSL's own limit is 32 MiB
)

// decryptPKCS8 opens an "ENCRYPTED PRIVATE KEY" (PBES2 with PBKDF2 or
// scrypt, AES-CBC or 3DES-CBC) and returns the PKCS#8 DER inside.
func decryptPKCS8(der []byte, passphrase string) ([]byte, error) {
	var enc pkcs8Encrypted
	if _, err := asn1.Unmarshal(der, &enc); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: %w", err)
	}
	if !enc.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted PKCS#8: scheme %v is not supported (only PBES2; re-encrypt with openssl pkcs8 -topk8 -v2 aes-256-cbc)", enc.Algorithm.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(enc.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: PBES2 parameters: %w", err)
	}
	var keyLen int
	var newBlock func([]byte) (cipher.Block, error)
	switch alg := params.Scheme.Algorithm; {
	case alg.Equal(oidAES128CBC):
		keyLen, newBlock = 16, aes.NewCipher
	case alg.Equal(oidAES192CBC):
		keyLen, newBlock = 24, aes.NewCipher
	case alg.Equal(oidAES256CBC):
		keyLen, newBlock = 32, aes.NewCipher
	case alg.Equal(oidDESEDE3CBC):
		keyLen, newBlock = 24, des.NewTripleDESCipher
	default:
		return nil, fmt.Errorf("encrypted PKCS#8: cipher %v is not supported", alg)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Scheme.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: cipher IV: %w", err)
	}
	key, err := pbes2Key(params.KDF, passphrase, keyLen)
	if err != nil {
		return nil, err
	}
	block, err := newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: %w", err)
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(enc.Data) == 0 || len(enc.Data)%bs != 0 {
		return nil, errors.New("encrypted PKCS#8: IV or data length is not a multiple of the block size")
	}
	plain := make([]byte, len(enc.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, enc.Data)
	// There is no MAC: a wrong passphrase shows as bad padding or as a
	// result that is not a PKCS#8 key.
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > bs {
		return nil, ErrKeyPassphraseWrong
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, ErrKeyPassphraseWrong
		}
	}
	plain = plain[:len(plain)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(plain); err != nil {
		return nil, ErrKeyPassphraseWrong
	}
	return plain, nil
}

func pbes2Key(kdf pkix8AlgID, passphrase string, keyLen int) ([]byte, error) {
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, fmt.Errorf("encrypted PKCS#8: PBKDF2 parameters: %w", err)
		}
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return nil, fmt.Errorf("encrypted PKCS#8: PBKDF2 iteration count %d out of range", p.Iterations)
		}
		var h func() hash.Hash
		switch a := p.PRF.Algorithm; {
		case len(a) == 0 || a.Equal(oidHMACSHA1):
			h = sha1.New
		case a.Equal(oidHMACSHA224):
			h = sha256.New224
		case a.Equal(oidHMACSHA256):
			h = sha256.New
		case a.Equal(oidHMACSHA384):
			h = sha512.New384
		case a.Equal(oidHMACSHA512):
			h = sha512.New
		default:
			return nil, fmt.Errorf("encrypted PKCS#8: PBKDF2 PRF %v is not supported", a)
		}
		k, err := pbkdf2.Key(h, passphrase, p.Salt, p.Iterations, keyLen)
		if err != nil {
			return nil, fmt.Errorf("encrypted PKCS#8: %w", err)
		}
		return k, nil
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, fmt.Errorf("encrypted PKCS#8: scrypt parameters: %w", err)
		}
		if p.Cost < 2 || p.Cost > maxScryptCost || p.BlockSize < 1 || p.BlockSize > 64 || p.Parallel < 1 || p.Parallel > 16 ||
			128*p.BlockSize*p.Cost > maxScryptMemory {
			return nil, fmt.Errorf("encrypted PKCS#8: scrypt parameters N=%d r=%d p=%d out of range", p.Cost, p.BlockSize, p.Parallel)
		}
		k, err := scrypt.Key([]byte(passphrase), p.Salt, p.Cost, p.BlockSize, p.Parallel, keyLen)
		if err != nil {
			return nil, fmt.Errorf("encrypted PKCS#8: scrypt: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("encrypted PKCS#8: key derivation %v is not supported", kdf.Algorithm)
}

// loadPKCS12 decodes a base64 PKCS#12 bundle: the client certificate and
// key, plus its CA certificates. As in OpenVPN, the bundle's CAs are extra
// chain certificates when the profile has its own ca, and trust anchors
// (returned) when it does not.
func loadPKCS12(b64, passphrase string, haveCA bool) (tls.Certificate, []*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pkcs12: not base64: %w", err)
	}
	k, leaf, cas, err := pkcs12.DecodeChain(der, passphrase)
	if err != nil && passphrase != "" && errors.Is(err, pkcs12.ErrIncorrectPassword) {
		// A passphrase given for a bundle that has none.
		if k2, l2, c2, err2 := pkcs12.DecodeChain(der, ""); err2 == nil {
			k, leaf, cas, err = k2, l2, c2, nil
		}
	}
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			if passphrase == "" {
				return tls.Certificate{}, nil, fmt.Errorf("pkcs12: %w", ErrKeyPassphraseNeeded)
			}
			return tls.Certificate{}, nil, fmt.Errorf("pkcs12: %w", ErrKeyPassphraseWrong)
		}
		return tls.Certificate{}, nil, fmt.Errorf("pkcs12: %w", err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, nil, fmt.Errorf("pkcs12: key of type %T cannot sign", k)
	}
	// The chain sent to the server: all bundle CAs when the profile has its
	// own ca, else the intermediates (OpenSSL builds the chain from its
	// store, where the bundle's CAs then are).
	var chain []*x509.Certificate
	for _, c := range cas {
		if haveCA || !bytes.Equal(c.RawIssuer, c.RawSubject) {
			chain = append(chain, c)
		}
	}
	if haveCA {
		cas = nil
	}
	cert, err := makeTLSCertificate(leaf, chain, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pkcs12: %w", err)
	}
	return cert, cas, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	switch a := a.(type) {
	case *rsa.PublicKey:
		return a.Equal(b)
	case *ecdsa.PublicKey:
		return a.Equal(b)
	case ed25519.PublicKey:
		return a.Equal(b)
	}
	return false
}
