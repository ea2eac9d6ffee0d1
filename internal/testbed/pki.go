package testbed

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// PKIFiles are the paths of a throwaway PKI, all inside Dir.
type PKIFiles struct {
	Dir                   string
	CACert, CAKey         string
	ServerCert, ServerKey string // CN=server, EKU serverAuth
	ClientCert, ClientKey string // CN=client, EKU clientAuth
	TLSCrypt              string // OpenVPN Static key V1, for --tls-crypt
	TLSAuth               string // OpenVPN Static key V1, for --tls-auth (a different key)
	TLSCryptV2Server      string // from openvpn --genkey tls-crypt-v2-server
	TLSCryptV2Client      string // from openvpn --genkey tls-crypt-v2-client, wrapped by the server key
}

// PKIOption changes how WritePKI makes keys.
type PKIOption func(*pkiConfig)

type pkiConfig struct{ rsaBits int } // 0: EC P-256

// WithRSA makes RSA-2048 keys instead of EC P-256.
func WithRSA() PKIOption { return WithRSABits(2048) }

// WithRSABits makes RSA keys of the given size (e.g. 4096) for the CA,
// server and client instead of EC P-256. Generating 4096-bit keys takes
// a second or more each.
func WithRSABits(bits int) PKIOption { return func(c *pkiConfig) { c.rsaBits = bits } }

// WritePKI writes a CA, server and client certificates, the tls-crypt and
// tls-auth static keys, and the tls-crypt-v2 keys into dir. Private keys
// are PKCS#8 ("BEGIN PRIVATE KEY"), mode 0600. Only the tls-crypt-v2 keys
// need the openvpn binary.
func WritePKI(ctx context.Context, dir string, opts ...PKIOption) (*PKIFiles, error) {
	var cfg pkiConfig
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki dir: %w", err)
	}
	f := &PKIFiles{
		Dir:              dir,
		CACert:           filepath.Join(dir, "ca.crt"),
		CAKey:            filepath.Join(dir, "ca.key"),
		ServerCert:       filepath.Join(dir, "server.crt"),
		ServerKey:        filepath.Join(dir, "server.key"),
		ClientCert:       filepath.Join(dir, "client.crt"),
		ClientKey:        filepath.Join(dir, "client.key"),
		TLSCrypt:         filepath.Join(dir, "tls-crypt.key"),
		TLSAuth:          filepath.Join(dir, "tls-auth.key"),
		TLSCryptV2Server: filepath.Join(dir, "tls-crypt-v2-server.key"),
		TLSCryptV2Client: filepath.Join(dir, "tls-crypt-v2-client.key"),
	}
	now := time.Now()
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "ovpn-testbed-CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caKey, caCert, err := issue(cfg, ca, nil, nil, f.CACert, f.CAKey)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	leafKU := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
	server := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "server"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		BasicConstraintsValid: true,
		KeyUsage:              leafKU,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"server"},
	}
	if _, _, err := issue(cfg, server, caCert, caKey, f.ServerCert, f.ServerKey); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	client := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "client"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		BasicConstraintsValid: true,
		KeyUsage:              leafKU,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, _, err := issue(cfg, client, caCert, caKey, f.ClientCert, f.ClientKey); err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	for _, path := range []string{f.TLSCrypt, f.TLSAuth} {
		if err := writeStaticKey(path); err != nil {
			return nil, err
		}
	}
	if err := genkey(ctx, "tls-crypt-v2-server", f.TLSCryptV2Server); err != nil {
		return nil, err
	}
	if err := genkey(ctx, "tls-crypt-v2-client", f.TLSCryptV2Client, "--tls-crypt-v2", f.TLSCryptV2Server); err != nil {
		return nil, err
	}
	return f, nil
}

// PKI is WritePKI into a fresh t.TempDir(); it needs the openvpn binary.
func PKI(t testing.TB, opts ...PKIOption) *PKIFiles {
	t.Helper()
	testenv.RequireCommand(t, "openvpn")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := WritePKI(ctx, t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("PKI: %v", err)
	}
	return f
}

// issue makes a key for tmpl, signs tmpl with parent/parentKey (self-signed
// when parent is nil) and writes certificate and key as PEM.
func issue(cfg pkiConfig, tmpl, parent *x509.Certificate, parentKey crypto.Signer, certPath, keyPath string) (crypto.Signer, *x509.Certificate, error) {
	var key crypto.Signer
	var err error
	if cfg.rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, cfg.rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse own certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// writeStaticKey writes 256 random bytes in the "OpenVPN Static key V1"
// text form: hex, 16 bytes per line, between BEGIN and END lines.
func writeStaticKey(path string) error {
	var key [256]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("static key: %w", err)
	}
	var b strings.Builder
	b.WriteString("#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n")
	for i := 0; i < len(key); i += 16 {
		b.WriteString(hex.EncodeToString(key[i : i+16]))
		b.WriteByte('\n')
	}
	b.WriteString("-----END OpenVPN Static key V1-----\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("static key: %w", err)
	}
	return nil
}

func genkey(ctx context.Context, kind, path string, extra ...string) error {
	args := append([]string{"--genkey", kind, path}, extra...)
	if out, err := exec.CommandContext(ctx, "openvpn", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("openvpn --genkey %s: %w: %s", kind, err, strings.TrimSpace(string(out)))
	}
	return os.Chmod(path, 0o600)
}

// Read returns the content of one of the PKI files (empty on error, which
// cannot happen for files WritePKI wrote unless someone removed them).
func (f *PKIFiles) Read(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
