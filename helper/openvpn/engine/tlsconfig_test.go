package engine

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

func makeCert(t *testing.T, cn string, parent *testCert, isCA bool, eku []x509.ExtKeyUsage, key crypto.Signer) *testCert {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		ExtKeyUsage:           eku,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCert{cert: c, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func keyPEM(t *testing.T, typ string, k crypto.Signer) string {
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

// handshake runs a TLS handshake between a client built from p and a
// server presenting srv, over an in-memory pipe.
func handshake(t *testing.T, p tlsParams, srv *testCert, clientCA *testCert) error {
	t.Helper()
	cfg, err := buildTLSConfig(p)
	if err != nil {
		t.Fatal(err)
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
	scfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srv.cert.Raw}, PrivateKey: srv.key}}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		scfg.ClientCAs, scfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	serr := make(chan error, 1)
	go func() {
		s := tls.Server(b, scfg)
		serr <- s.Handshake()
		s.Close()
	}()
	c := tls.Client(a, cfg)
	cerr := c.Handshake()
	c.Close()
	a.Close()
	<-serr
	return cerr
}

func TestTLSVerification(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	other := makeCert(t, "other-ca", nil, true, nil, nil)
	server := makeCert(t, "server.example", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	clientEKU := makeCert(t, "client-as-server", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	client := makeCert(t, "client", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	cases := []struct {
		name    string
		p       tlsParams
		srv     *testCert
		wantErr string
	}{
		{"good, no hostname check", tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, server, ""},
		{"wrong CA", tlsParams{CA: other.pem}, server, "verify server certificate"},
		{"client EKU rejected with remote-cert-tls", tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, clientEKU, "usage"},
		{"client EKU accepted without remote-cert-tls", tlsParams{CA: ca.pem}, clientEKU, ""},
		{"client certificate sent", tlsParams{CA: ca.pem, Cert: client.pem, Key: keyPEM(t, "PRIVATE KEY", client.key)}, server, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var needClient *testCert
			if tc.p.Cert != "" {
				needClient = ca
			}
			err := handshake(t, tc.p, tc.srv, needClient)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("handshake error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadKeyPairFormats(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	ec := makeCert(t, "ec", ca, false, nil, nil)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rc := makeCert(t, "rsa", ca, false, nil, rk)
	for _, tc := range []struct {
		name, cert, key string
	}{
		{"EC PKCS#8", ec.pem, keyPEM(t, "PRIVATE KEY", ec.key)},
		{"EC SEC1", ec.pem, keyPEM(t, "EC PRIVATE KEY", ec.key)},
		{"RSA PKCS#8", rc.pem, keyPEM(t, "PRIVATE KEY", rc.key)},
		{"RSA PKCS#1", rc.pem, keyPEM(t, "RSA PRIVATE KEY", rc.key)},
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
}
