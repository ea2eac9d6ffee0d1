package engine

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// certPKI replaces the CA, server and client certificates of a test-bed
// PKI (keeping its tls-crypt keys) with certificates made by the test.
type certPKI struct {
	files          *testbed.PKIFiles
	ca, server     *testCert
	client         *testCert
	serverSelfSign bool
}

var leafKU = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement

func rsaKey(t *testing.T, bits int) crypto.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCertPKI makes CA, server and client certificates; keyFn returns the
// key for each (nil: EC P-256), sigAlg the signature algorithm.
func newCertPKI(t *testing.T, keyFn func() crypto.Signer, sigAlg x509.SignatureAlgorithm) *certPKI {
	t.Helper()
	if keyFn == nil {
		keyFn = func() crypto.Signer { return nil }
	}
	p := &certPKI{files: testbed.PKI(t)}
	far := time.Now().AddDate(1, 0, 0)
	p.ca = issueCert(t, certSpec{subject: pkix.Name{CommonName: "ovpn3go cert test CA"}, isCA: true, key: keyFn(), notAfter: far, sigAlg: sigAlg}, nil)
	p.server = issueCert(t, certSpec{subject: pkix.Name{Country: []string{"DE"}, Organization: []string{"ovpn3go test"}, CommonName: "server"},
		eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ku: leafKU, key: keyFn(), notAfter: far, sigAlg: sigAlg}, p.ca)
	p.client = issueCert(t, certSpec{subject: pkix.Name{CommonName: "client"},
		eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, ku: leafKU, key: keyFn(), notAfter: far, sigAlg: sigAlg}, p.ca)
	p.write(t)
	return p
}

func (p *certPKI) write(t *testing.T) {
	t.Helper()
	for path, content := range map[string]string{
		p.files.CACert:     p.ca.pem,
		p.files.ServerCert: p.server.pem,
		p.files.ServerKey:  keyPEM(t, "PRIVATE KEY", p.server.key),
		p.files.ClientCert: p.client.pem,
		p.files.ClientKey:  keyPEM(t, "PRIVATE KEY", p.client.key),
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// certRun connects the engine with profile text to the pair's server and
// returns the error of Run: nil after a working tunnel was pinged and
// the client disconnected, else the failure.
func certRun(t *testing.T, pair *testbed.Pair, text string, creds Credentials) error {
	t.Helper()
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatalf("profile: %v\n%s", err, text)
	}
	states := newStateLog()
	c, err := New(Config{Profile: prof, Credentials: creds, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states,
		Logger: testLogger(t), Version: "ovpn3go-test", Dial: nsDial(pair.ClientNS)})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	for {
		select {
		case s := <-states.ch:
			switch s {
			case StateConnected:
				perr := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3)
				cancel()
				if err := <-runErr; err != nil {
					t.Errorf("Run after cancel: %v", err)
				}
				return perr
			case StateFailed, StateAuthFailed:
				err := <-runErr
				if err == nil {
					t.Errorf("state %v (%s) but Run returned nil", s, states.last())
				}
				return err
			case StateReconnecting:
				// The server answered and the attempt failed: the engine
				// keeps trying (as OpenVPN); the reason is the outcome.
				reason := states.last()
				cancel()
				if err := <-runErr; err != nil {
					t.Errorf("Run after cancel: %v", err)
				}
				return errors.New(reason)
			}
		case err := <-runErr:
			if err == nil {
				err = errors.New("Run returned before connecting")
			}
			return err
		}
	}
}

var inlineBlock = map[string]*regexp.Regexp{}

// withoutBlocks removes the named inline blocks from profile text.
func withoutBlocks(text string, tags ...string) string {
	for _, tag := range tags {
		re, ok := inlineBlock[tag]
		if !ok {
			re = regexp.MustCompile(`(?s)<` + tag + `>\n.*?</` + tag + `>\n`)
			inlineBlock[tag] = re
		}
		text = re.ReplaceAllString(text, "")
	}
	return text
}

// TestIntegrationCertRSA4096 connects to the real server with an RSA-4096
// PKI, checking the server's full subject with verify-x509-name.
func TestIntegrationCertRSA4096(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pki := newCertPKI(t, func() crypto.Signer { return rsaKey(t, 4096) }, 0)
	pair := testbed.NetPair(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
	text := srv.Profile() + "verify-x509-name 'C=DE, O=ovpn3go test, CN=server' subject\n"
	if err := certRun(t, pair, text, Credentials{}); err != nil {
		t.Fatalf("RSA-4096 PKI: %v", err)
	}
}

// TestIntegrationCertProfiles runs the certificate options against the
// real OpenVPN 2.6 server: each case connects or fails with its reason.
func TestIntegrationCertProfiles(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "openssl")

	t.Run("pkcs12", func(t *testing.T) {
		pki := newCertPKI(t, nil, 0)
		pair := testbed.NetPair(t)
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
		out := filepath.Join(t.TempDir(), "client.p12")
		runOpenSSL(t, "pkcs12", "-export", "-in", pki.files.ClientCert, "-inkey", pki.files.ClientKey,
			"-certfile", pki.files.CACert, "-passout", "pass:bundle-pass", "-out", out)
		der, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		// The bundle brings the CA too: no <ca> block.
		text := withoutBlocks(srv.Profile(), "ca", "cert", "key") +
			"<pkcs12>\n" + base64.StdEncoding.EncodeToString(der) + "\n</pkcs12>\n"
		if err := certRun(t, pair, text, Credentials{}); !errors.Is(err, ErrKeyPassphraseNeeded) {
			t.Errorf("without passphrase: %v", err)
		}
		if err := certRun(t, pair, text, Credentials{KeyPassphrase: "bundle-pass"}); err != nil {
			t.Fatalf("pkcs12 profile: %v", err)
		}
	})

	t.Run("encrypted-key", func(t *testing.T) {
		pki := newCertPKI(t, nil, 0)
		pair := testbed.NetPair(t)
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
		out := filepath.Join(t.TempDir(), "client-enc.key")
		runOpenSSL(t, "pkcs8", "-topk8", "-in", pki.files.ClientKey, "-v2", "aes-256-cbc", "-passout", "pass:key-pass", "-out", out)
		text := withoutBlocks(srv.Profile(), "key") + "<key>\n" + readFile(t, out) + "</key>\n"
		if err := certRun(t, pair, text, Credentials{KeyPassphrase: "key-pass"}); err != nil {
			t.Fatalf("encrypted key: %v", err)
		}
	})

	t.Run("peer-fingerprint", func(t *testing.T) {
		pki := newCertPKI(t, nil, 0)
		// A self-signed server certificate; the server still checks
		// clients against the CA.
		pki.server = issueCert(t, certSpec{subject: pkix.Name{CommonName: "self-signed-server"}, ku: leafKU,
			eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, notAfter: time.Now().AddDate(1, 0, 0)}, nil)
		pki.write(t)
		pair := testbed.NetPair(t)
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
		base := withoutBlocks(srv.Profile(), "ca")
		if err := certRun(t, pair, base+"<peer-fingerprint>\n"+fingerprintOf(pki.server)+"\n</peer-fingerprint>\n", Credentials{}); err != nil {
			t.Fatalf("peer-fingerprint: %v", err)
		}
		err := certRun(t, pair, base+"peer-fingerprint "+fingerprintOf(pki.client)+"\n", Credentials{})
		if err == nil || !strings.Contains(err.Error(), `peer-fingerprint: server certificate "CN=self-signed-server" has SHA-256 fingerprint`) {
			t.Errorf("wrong fingerprint: %v", err)
		}
	})

	t.Run("verify-x509-name-mismatch", func(t *testing.T) {
		pki := newCertPKI(t, nil, 0)
		pair := testbed.NetPair(t)
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
		err := certRun(t, pair, srv.Profile()+"verify-x509-name vpn.example.com name\n", Credentials{})
		if err == nil || !strings.Contains(err.Error(), `verify-x509-name: server certificate common name "server" is not "vpn.example.com"`) {
			t.Fatalf("mismatch: %v", err)
		}
		if err := certRun(t, pair, srv.Profile()+"verify-x509-name serv name-prefix\n", Credentials{}); err != nil {
			t.Fatalf("name-prefix match: %v", err)
		}
	})

	t.Run("revoked-server", func(t *testing.T) {
		pki := newCertPKI(t, nil, 0)
		pair := testbed.NetPair(t)
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: pki.server.cert.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)}},
		}, pki.ca.cert, pki.ca.key)
		if err != nil {
			t.Fatal(err)
		}
		crl := string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
		err = certRun(t, pair, srv.Profile()+"<crl-verify>\n"+crl+"</crl-verify>\n", Credentials{})
		if err == nil || !strings.Contains(err.Error(), `crl-verify: server certificate "C=DE, O=ovpn3go test, CN=server"`) || !strings.Contains(err.Error(), "is revoked") {
			t.Fatalf("revoked server certificate: %v", err)
		}
	})

	t.Run("sha1-chain", func(t *testing.T) {
		pki := newCertPKI(t, func() crypto.Signer { return rsaKey(t, 2048) }, x509.SHA1WithRSA)
		pair := testbed.NetPair(t)
		// OpenSSL 3 refuses to load SHA-1-signed certificates above
		// security level 0, which "tls-cert-profile insecure" selects.
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files, Extra: []string{"tls-cert-profile insecure"}})
		err := certRun(t, pair, srv.Profile(), Credentials{})
		if err == nil || !strings.Contains(err.Error(), `server certificate "C=DE, O=ovpn3go test, CN=server" is signed with SHA1-RSA: SHA-1 signatures are refused`) {
			t.Fatalf("SHA-1 chain without tls-cert-profile insecure: %v", err)
		}
		if err := certRun(t, pair, srv.Profile()+"tls-cert-profile insecure\n", Credentials{}); err != nil {
			t.Fatalf("SHA-1 chain with tls-cert-profile insecure: %v", err)
		}
	})

	t.Run("dhe-only-tls12-server", func(t *testing.T) {
		pki := newCertPKI(t, func() crypto.Signer { return rsaKey(t, 2048) }, 0)
		dh := filepath.Join(t.TempDir(), "dh.pem")
		runOpenSSL(t, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", dh)
		pair := testbed.NetPair(t)
		srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files,
			Extra: []string{"dh " + dh, "tls-version-max 1.2", "tls-cipher DHE-RSA-AES256-GCM-SHA384"}})
		// OpenSSL's alert never reaches the client (the server drops the
		// session at once), so the client sees only silence after its
		// ClientHello and gives up at hand-window.
		err := certRun(t, pair, srv.Profile()+"hand-window 5\n", Credentials{})
		if err == nil || !strings.Contains(err.Error(), "hand-window") {
			t.Fatalf("DHE-only TLS 1.2 server: %v\n%s", err, srv.LogTail(10))
		}
		t.Logf("DHE-only server, profile without tls-cipher: %v", err)
		// Said in the profile, it is refused before connecting.
		err = certRun(t, pair, srv.Profile()+"tls-version-max 1.2\ntls-cipher DHE-RSA-AES256-GCM-SHA384\n", Credentials{})
		if err == nil || !strings.Contains(err.Error(), "only finite-field DHE suites") {
			t.Fatalf("DHE-only profile: %v", err)
		}
	})
}
