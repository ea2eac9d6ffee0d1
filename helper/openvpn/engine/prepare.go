package engine

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// Prepared is what a connection's set-up needs from the profile alone: the
// TLS configuration, with the certificates and the private key parsed and
// the server check built. A backend prepares it when it receives the
// profile, before the Connect, and hands it to New (Config.Prepared), so the
// connect does not build it again before its first packet.
type Prepared struct {
	tls tlsParams
}

// Prepare builds the TLS configuration of p for a key opened with
// keyPassphrase (empty: none). It fails as New would on the same profile's
// certificates and key: ErrKeyPassphraseNeeded says the key needs a
// passphrase first.
func Prepare(p *profile.Profile, keyPassphrase string) (*Prepared, error) {
	if p == nil {
		return nil, errors.New("engine: no profile")
	}
	pre := &Prepared{tls: tlsParamsFromProfile(p, keyPassphrase)}
	if _, err := buildTLSConfig(pre.tls); err != nil {
		return nil, err
	}
	return pre, nil
}

// lend gives t the prepared build when t was made from the same
// parameters (the same profile text and passphrase): true when it did.
func (pre *Prepared) lend(t *tlsParams) bool {
	if pre == nil {
		return false
	}
	a, b := pre.tls, *t
	a.built, b.built = nil, nil
	if !reflect.DeepEqual(a, b) {
		return false
	}
	t.built = pre.tls.built
	return true
}

// Warm runs, once and in memory, what the client's side of the handshake
// runs: the key shares of its ClientHello (X25519 and ML-KEM-768) and an
// X25519 agreement, the key schedule's hashes and the record cipher, a
// signature with the profile's key as the CertificateVerify makes and its
// check, and the chain check against the profile's CA. In a new process
// the first handshake takes several times as long as later ones (the code
// runs for the first time: its pages are faulted in, its tables built);
// warmed while the backend waits for its Connect, the real handshake's
// turns do not pay for that. Only code the handshake runs anyway is
// touched (no TLS server code), and nothing is kept.
func (pre *Prepared) Warm(ctx context.Context) error {
	cfg, err := buildTLSConfig(pre.tls)
	if err != nil {
		return err
	}
	var errs []error
	// The ClientHello's key shares and the server's X25519 answer.
	if _, err := mlkem.GenerateKey768(); err != nil {
		errs = append(errs, err)
	}
	x := ecdh.X25519()
	a, err := x.GenerateKey(rand.Reader)
	if err == nil {
		var b *ecdh.PrivateKey
		if b, err = x.GenerateKey(rand.Reader); err == nil {
			_, err = a.ECDH(b.PublicKey())
		}
	}
	errs = append(errs, err)
	// The key schedule and the records (TLS_AES_256_GCM_SHA384).
	if _, err := hkdf.Key(sha512.New384, []byte("secret"), nil, "label", 48); err != nil {
		errs = append(errs, err)
	}
	h := hmac.New(sha256.New, []byte("key"))
	h.Write([]byte("transcript"))
	digest := h.Sum(nil)
	if blk, err := aes.NewCipher(make([]byte, 32)); err == nil {
		if aead, err := cipher.NewGCM(blk); err == nil {
			aead.Seal(nil, make([]byte, aead.NonceSize()), digest, nil)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The CertificateVerify: signed with the profile's key, checked as
	// the server's is (its key is usually of the same kind).
	var cert *tls.Certificate
	if cfg.GetClientCertificate != nil {
		cert, _ = cfg.GetClientCertificate(nil)
	}
	if cert != nil {
		errs = append(errs, warmSignature(cert, digest))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The chain check of the server's certificate: the profile's own
	// certificate stands in (its verdict does not matter).
	if ver := pre.tls.built.ver; ver != nil && len(ver.roots) > 0 && cert != nil && cert.Leaf != nil {
		_, _ = ver.verifyChain([]*x509.Certificate{cert.Leaf})
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}

// warmSignature signs digest with cert's key as TLS 1.3 would (RSA-PSS for
// RSA keys) and checks the signature with the certificate's public key.
func warmSignature(cert *tls.Certificate, digest []byte) error {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || cert.Leaf == nil {
		return nil
	}
	sum := sha256.Sum256(digest)
	switch pub := cert.Leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pub, sum[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err := signer.Sign(rand.Reader, sum[:], opts)
		if err != nil {
			return err
		}
		return rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, opts)
	case ed25519.PublicKey:
		sig, err := signer.Sign(rand.Reader, digest, crypto.Hash(0))
		if err != nil {
			return err
		}
		if !ed25519.Verify(pub, digest, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
	}
	return nil
}
