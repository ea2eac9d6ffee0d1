package engine

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

var testSerial atomic.Int64

// certSpec describes a test certificate; zero values give an EC P-256
// leaf valid for an hour around now with KU digitalSignature.
type certSpec struct {
	subject   pkix.Name
	isCA      bool
	eku       []x509.ExtKeyUsage
	ku        x509.KeyUsage
	noKU      bool
	key       crypto.Signer
	notBefore time.Time
	notAfter  time.Time
	sigAlg    x509.SignatureAlgorithm
}

func issueCert(t testing.TB, s certSpec, parent *testCert) *testCert {
	t.Helper()
	key := s.key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	if s.notBefore.IsZero() {
		s.notBefore = time.Now().Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = time.Now().Add(time.Hour)
	}
	ku := s.ku
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
		if s.isCA {
			ku |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
	}
	if s.noKU {
		ku = 0
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + testSerial.Add(1)),
		Subject:               s.subject,
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		IsCA:                  s.isCA,
		BasicConstraintsValid: true,
		ExtKeyUsage:           s.eku,
		KeyUsage:              ku,
		SignatureAlgorithm:    s.sigAlg,
	}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func makeCert(t testing.TB, cn string, parent *testCert, isCA bool, eku []x509.ExtKeyUsage, key crypto.Signer) *testCert {
	t.Helper()
	return issueCert(t, certSpec{subject: pkix.Name{CommonName: cn}, isCA: isCA, eku: eku, key: key}, parent)
}

func keyPEM(t testing.TB, typ string, k crypto.Signer) string {
	t.Helper()
	var der []byte
	var err error
	switch typ {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(k)
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// serverTLS is a crypto/tls server config presenting chain (leaf first);
// with clientCA it demands a client certificate from that CA.
func serverTLS(chain []*testCert, clientCA *testCert) *tls.Config {
	var raw [][]byte
	for _, c := range chain {
		raw = append(raw, c.cert.Raw)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: raw, PrivateKey: chain[0].key}}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// runHandshake runs a TLS handshake between a client built from p and the
// server config over loopback TCP; it returns the client's error, or the
// server's when the client saw none (in TLS 1.3 the client finishes first).
func runHandshake(t *testing.T, p tlsParams, scfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	cfg, err := buildTLSConfig(p)
	if err != nil {
		t.Fatalf("buildTLSConfig: %v", err)
	}
	// Loopback TCP, not net.Pipe: an unbuffered pipe deadlocks when both
	// ends write an alert at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	serr := make(chan error, 1)
	go func() {
		s := tls.Server(b, scfg)
		serr <- s.Handshake()
		s.Close()
	}()
	c := tls.Client(a, cfg)
	cerr := c.Handshake()
	st := c.ConnectionState()
	c.Close()
	a.Close()
	if se := <-serr; cerr == nil && se != nil {
		cerr = fmt.Errorf("server: %w", se)
	}
	return st, cerr
}

func handshake(t *testing.T, p tlsParams, srv *testCert, clientCA *testCert) error {
	t.Helper()
	_, err := runHandshake(t, p, serverTLS([]*testCert{srv}, clientCA))
	return err
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func TestTLSVerification(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	other := makeCert(t, "other-ca", nil, true, nil, nil)
	server := makeCert(t, "server.example", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	clientEKU := makeCert(t, "client-as-server", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	client := makeCert(t, "client", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	noKU := issueCert(t, certSpec{subject: pkix.Name{CommonName: "no-ku"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, noKU: true}, ca)
	signOnly := issueCert(t, certSpec{subject: pkix.Name{CommonName: "crl-sign-only"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ku: x509.KeyUsageCRLSign}, ca)
	expired := issueCert(t, certSpec{subject: pkix.Name{CommonName: "expired"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)}, ca)
	cases := []struct {
		name    string
		p       tlsParams
		srv     *testCert
		wantErr string
	}{
		{"good, no hostname check", tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, server, ""},
		{"wrong CA", tlsParams{CA: other.pem}, server, `server certificate "CN=server.example" (issuer "CN=ca") is not signed by the profile's CA`},
		{"client EKU rejected with remote-cert-tls", tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, clientEKU, `lacks extended key usage "TLS Web Server Authentication"`},
		{"client EKU accepted without remote-cert-tls", tlsParams{CA: ca.pem}, clientEKU, ""},
		{"remote-cert-tls needs a KU extension", tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, noKU, `"CN=no-ku" has no key usage extension`},
		{"no KU is fine without remote-cert-tls", tlsParams{CA: ca.pem}, noKU, ""},
		{"remote-cert-tls needs a TLS key usage", tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, signOnly, "allows none of digitalSignature"},
		{"remote-cert-ku match", tlsParams{CA: ca.pem, RemoteCertKU: []string{"a0", "80"}}, server, ""},
		{"remote-cert-ku mismatch", tlsParams{CA: ca.pem, RemoteCertKU: []string{"a0", "88"}}, server, "has key usage 80, not one of a0, 88"},
		{"remote-cert-eku by OID", tlsParams{CA: ca.pem, RemoteCertEKU: "1.3.6.1.5.5.7.3.2"}, clientEKU, ""},
		{"remote-cert-eku by name", tlsParams{CA: ca.pem, RemoteCertEKU: "TLS Web Server Authentication"}, clientEKU, "lacks extended key usage"},
		{"expired", tlsParams{CA: ca.pem}, expired, `server certificate "CN=expired" is not valid now`},
		{"client certificate sent", tlsParams{CA: ca.pem, Cert: client.pem, Key: keyPEM(t, "PRIVATE KEY", client.key)}, server, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var needClient *testCert
			if tc.p.Cert != "" {
				needClient = ca
			}
			wantErr(t, handshake(t, tc.p, tc.srv, needClient), tc.wantErr)
		})
	}
}

func TestTLSChainWithIntermediate(t *testing.T) {
	root := makeCert(t, "root", nil, true, nil, nil)
	inter := makeCert(t, "intermediate", root, true, nil, nil)
	server := makeCert(t, "server", inter, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	_, err := runHandshake(t, tlsParams{CA: root.pem, RemoteCertTLS: "server"}, serverTLS([]*testCert{server, inter}, nil))
	wantErr(t, err, "")
	_, err = runHandshake(t, tlsParams{CA: root.pem}, serverTLS([]*testCert{server}, nil))
	wantErr(t, err, "not signed by the profile's CA")

	// extra-certs: the client's intermediate goes with its certificate.
	client := makeCert(t, "client", inter, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	srv := serverTLS([]*testCert{makeCert(t, "server2", root, false, nil, nil)}, root)
	p := tlsParams{CA: root.pem, Cert: client.pem, Key: keyPEM(t, "PRIVATE KEY", client.key)}
	if _, err := runHandshake(t, p, srv); err == nil {
		t.Error("server accepted a client certificate without its intermediate")
	}
	p.ExtraCerts = inter.pem
	_, err = runHandshake(t, p, srv)
	wantErr(t, err, "")
}

func TestTLSVersionsAndSuites(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	server := makeCert(t, "server", ca, false, nil, nil)
	srv := serverTLS([]*testCert{server}, nil)

	st, err := runHandshake(t, tlsParams{CA: ca.pem}, srv)
	wantErr(t, err, "")
	if st.Version != tls.VersionTLS13 {
		t.Errorf("default version %x, want TLS 1.3", st.Version)
	}
	st, err = runHandshake(t, tlsParams{CA: ca.pem, MaxVersion: "1.2", Cipher: "ECDHE-ECDSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384"}, srv)
	wantErr(t, err, "")
	if st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 {
		t.Errorf("version %x suite %s, want TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384", st.Version, tls.CipherSuiteName(st.CipherSuite))
	}
	st, err = runHandshake(t, tlsParams{CA: ca.pem, MaxVersion: "1.2", Cipher: "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256", Groups: "secp384r1"}, srv)
	wantErr(t, err, "")
	if st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Errorf("IANA-named suite not used: %s", tls.CipherSuiteName(st.CipherSuite))
	}
	// The server insists on TLS 1.3; the client caps at 1.2.
	srv13 := serverTLS([]*testCert{server}, nil)
	srv13.MinVersion = tls.VersionTLS13
	_, err = runHandshake(t, tlsParams{CA: ca.pem, MaxVersion: "1.2"}, srv13)
	if err == nil {
		t.Error("tls-version-max 1.2 connected to a TLS 1.3-only server")
	}

	for _, tc := range []struct {
		name string
		p    tlsParams
		want string
	}{
		{"max below 1.2", tlsParams{CA: ca.pem, MaxVersion: "1.1"}, "tls-version-max 1.1: TLS older than 1.2"},
		{"min above max", tlsParams{CA: ca.pem, MinVersion: "1.3", MaxVersion: "1.2"}, "tls-version-min 1.3 is above tls-version-max 1.2"},
		{"DHE only on TLS 1.2", tlsParams{CA: ca.pem, MaxVersion: "1.2", Cipher: "DHE-RSA-AES256-GCM-SHA384"}, "only finite-field DHE suites"},
		{"unknown suite", tlsParams{CA: ca.pem, Cipher: "FOO-BAR-SHA"}, `tls-cipher "FOO-BAR-SHA": no cipher suite this client supports`},
		{"TLS 1.3 suites Go lacks", tlsParams{CA: ca.pem, CipherSuites: "TLS_AES_128_CCM_SHA256"}, "tls-ciphersuites"},
		{"unknown group", tlsParams{CA: ca.pem, Groups: "X25519:nonsense"}, `tls-groups "X25519:nonsense": unknown group "nonsense"`},
		{"FFDHE group", tlsParams{CA: ca.pem, Groups: "ffdhe2048"}, "implements none of ffdhe2048"},
		{"bad cert profile", tlsParams{CA: ca.pem, CertProfile: "paranoid"}, "tls-cert-profile"},
	} {
		if _, err := buildTLSConfig(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg, err := buildTLSConfig(tlsParams{CA: ca.pem, Cipher: "DHE-RSA-AES256-GCM-SHA384"})
	if err != nil || cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("DHE-only tls-cipher without a version cap: %v, MinVersion %x (want TLS 1.3 only)", err, cfg.MinVersion)
	}
	cfg, err = buildTLSConfig(tlsParams{CA: ca.pem, Cipher: "DEFAULT:!aNULL:@SECLEVEL=0", CipherSuites: "TLS_AES_256_GCM_SHA384:TLS_AES_128_CCM_SHA256", Groups: "X25519:prime256v1:X448", MinVersion: "1.0", MinOrHighest: true})
	if err != nil || cfg.CipherSuites != nil || len(cfg.CurvePreferences) != 2 || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("cipher expression: %v %v %v %x", err, cfg.CipherSuites, cfg.CurvePreferences, cfg.MinVersion)
	}
	if e := explainHandshakeError(errString("remote error: tls: handshake failure")); !strings.Contains(e.Error(), "finite-field DHE") {
		t.Errorf("explainHandshakeError: %v", e)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestLoadKeyPairFormats(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	ec := makeCert(t, "ec", ca, false, nil, nil)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rc := makeCert(t, "rsa", ca, false, nil, rk)
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	edc := makeCert(t, "ed25519", ca, false, nil, ek)
	for _, tc := range []struct {
		name, cert, key string
	}{
		{"EC PKCS#8", ec.pem, keyPEM(t, "PRIVATE KEY", ec.key)},
		{"EC SEC1", ec.pem, keyPEM(t, "EC PRIVATE KEY", ec.key)},
		{"RSA PKCS#8", rc.pem, keyPEM(t, "PRIVATE KEY", rc.key)},
		{"RSA PKCS#1", rc.pem, keyPEM(t, "RSA PRIVATE KEY", rc.key)},
		{"Ed25519 PKCS#8", edc.pem, keyPEM(t, "PRIVATE KEY", edc.key)},
	} {
		if _, err := loadKeyPair(tc.cert, tc.key); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := loadKeyPair(ec.pem, keyPEM(t, "RSA PRIVATE KEY", rc.key)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	if _, err := loadKeyPair(ec.pem, "garbage"); err == nil {
		t.Error("garbage key accepted")
	}
	if _, err := buildTLSConfig(tlsParams{CA: "nothing"}); err == nil {
		t.Error("profile without CA accepted")
	}
	if _, err := buildTLSConfig(tlsParams{CA: ca.pem, RemoteCertTLS: "client"}); err == nil {
		t.Error("remote-cert-tls client accepted")
	}
	cfg, err := buildTLSConfig(tlsParams{CA: ca.pem, MinVersion: "1.3"})
	if err != nil || cfg.MinVersion != tls.VersionTLS13 || !cfg.DynamicRecordSizingDisabled {
		t.Errorf("config %v %v", cfg, err)
	}

	// Ed25519 client certificates work with TLS 1.3.
	server := makeCert(t, "server", ca, false, nil, nil)
	_, err = runHandshake(t, tlsParams{CA: ca.pem, Cert: edc.pem, Key: keyPEM(t, "PRIVATE KEY", edc.key)}, serverTLS([]*testCert{server}, ca))
	wantErr(t, err, "")
}

func TestTLSConfigBuiltOnce(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	client := makeCert(t, "client", ca, false, nil, nil)
	p := tlsParams{CA: ca.pem, Cert: client.pem, Key: keyPEM(t, "PRIVATE KEY", client.key), built: &builtTLS{}}
	a, err := buildTLSConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := buildTLSConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("the same *tls.Config returned twice")
	}
	ca1, _ := a.GetClientCertificate(nil)
	ca2, _ := b.GetClientCertificate(nil)
	if ca1 != ca2 {
		t.Error("client certificate parsed again")
	}
	p.built = &builtTLS{}
	p.Key = "broken"
	for range 2 {
		if _, err := buildTLSConfig(p); err == nil {
			t.Error("broken key accepted")
		}
	}
}
