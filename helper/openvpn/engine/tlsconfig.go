package engine

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// tlsParams is what the TLS client needs from the profile.
type tlsParams struct {
	CA, Cert, Key string // PEM
	RemoteCertTLS string // "server" to require EKU serverAuth, "" for none
	MinVersion    string // tls-version-min: "1.0", "1.1", "1.2", "1.3"
}

// buildTLSConfig makes the crypto/tls client config for the control channel:
// the server is verified against the profile's CA only (OpenVPN does no
// hostname check), with the EKU rule of remote-cert-tls.
func buildTLSConfig(p tlsParams) (*tls.Config, error) {
	roots := x509.NewCertPool()
	cas, err := parseCerts(p.CA)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if len(cas) == 0 {
		return nil, errors.New("ca: no certificate in the profile")
	}
	for _, c := range cas {
		roots.AddCert(c)
	}
	cfg := &tls.Config{
		// Each TLS record is one control message to OpenVPN; Go's dynamic
		// record sizing would split large messages.
		DynamicRecordSizingDisabled: true,
		MinVersion:                  tls.VersionTLS12,
		// Verification is done below: CA from the profile, no hostname.
		InsecureSkipVerify: true,
		// OpenVPN's TLS is never resumed.
		SessionTicketsDisabled: true,
	}
	if p.MinVersion != "" {
		v, err := parseTLSVersion(p.MinVersion)
		if err != nil {
			return nil, err
		}
		cfg.MinVersion = v
	}
	var eku []x509.ExtKeyUsage
	switch strings.ToLower(p.RemoteCertTLS) {
	case "":
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	case "server":
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	default:
		return nil, fmt.Errorf("remote-cert-tls %q: a client can only require \"server\"", p.RemoteCertTLS)
	}
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		return verifyServerChain(raw, roots, eku)
	}
	if p.Cert != "" || p.Key != "" {
		if p.Cert == "" || p.Key == "" {
			return nil, errors.New("client certificate and key must be given together")
		}
		cert, err := loadKeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func parseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.0", "1.1", "1.2":
		// Older than 1.2 is not offered; 1.2 is the floor.
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls-version-min %q: want 1.0, 1.1, 1.2 or 1.3", s)
}

func verifyServerChain(raw [][]byte, roots *x509.CertPool, eku []x509.ExtKeyUsage) error {
	if len(raw) == 0 {
		return errors.New("server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("server certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: eku})
	if err != nil {
		return fmt.Errorf("verify server certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

func parseCerts(text string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// loadKeyPair accepts PKCS#8, PKCS#1 (RSA) and SEC1 (EC) private keys; the
// certificate PEM may carry extra chain certificates after the leaf.
func loadKeyPair(certPEM, keyPEM string) (tls.Certificate, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cert: %w", err)
	}
	if len(certs) == 0 {
		return tls.Certificate{}, errors.New("cert: no certificate in the profile")
	}
	kb, _ := pem.Decode([]byte(keyPEM))
	if kb == nil {
		return tls.Certificate{}, errors.New("key: no PEM block")
	}
	if strings.Contains(kb.Type, "ENCRYPTED") || kb.Headers["Proc-Type"] != "" {
		return tls.Certificate{}, errors.New("key: encrypted private keys are not supported yet")
	}
	var key crypto.Signer
	switch kb.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("key: PKCS#8: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return tls.Certificate{}, fmt.Errorf("key: PKCS#8 key of type %T cannot sign", k)
		}
		key = s
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("key: PKCS#1: %w", err)
		}
		key = k
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(kb.Bytes)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("key: SEC1: %w", err)
		}
		key = k
	default:
		return tls.Certificate{}, fmt.Errorf("key: unsupported PEM type %q", kb.Type)
	}
	if !publicKeysEqual(certs[0].PublicKey, key.Public()) {
		return tls.Certificate{}, errors.New("key does not match the certificate")
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: certs[0]}, nil
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
