package engine

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func fingerprintOf(c *testCert) string {
	sum := sha256.Sum256(c.cert.Raw)
	return formatFingerprint(sum[:])
}

func TestPeerFingerprint(t *testing.T) {
	self := makeCert(t, "self-signed-server", nil, false, nil, nil)
	ca := makeCert(t, "ca", nil, true, nil, nil)
	signed := makeCert(t, "server", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	other := makeCert(t, "other", nil, false, nil, nil)
	for _, tc := range []struct {
		name string
		p    tlsParams
		srv  *testCert
		want string
	}{
		{"self-signed, fingerprint, no CA", tlsParams{PeerFingerprints: []string{fingerprintOf(other), fingerprintOf(self)}}, self, ""},
		{"lower-case fingerprint", tlsParams{PeerFingerprints: []string{strings.ToLower(fingerprintOf(self))}}, self, ""},
		{"fingerprint mismatch", tlsParams{PeerFingerprints: []string{fingerprintOf(other)}}, self,
			`peer-fingerprint: server certificate "CN=self-signed-server" has SHA-256 fingerprint ` + fingerprintOf(self) + ", which the profile does not list"},
		{"fingerprint and CA both checked: good", tlsParams{CA: ca.pem, PeerFingerprints: []string{fingerprintOf(signed)}, RemoteCertTLS: "server"}, signed, ""},
		{"fingerprint and CA both checked: CA fails", tlsParams{CA: other.pem, PeerFingerprints: []string{fingerprintOf(signed)}}, signed, "not signed by the profile's CA"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, handshake(t, tc.p, tc.srv, nil), tc.want) })
	}
	if _, err := buildTLSConfig(tlsParams{PeerFingerprints: []string{"AB:CD"}}); err == nil || !strings.Contains(err.Error(), "peer-fingerprint") {
		t.Errorf("short fingerprint: %v", err)
	}
	if _, err := buildTLSConfig(tlsParams{}); err == nil || !strings.Contains(err.Error(), "no CA certificate and no peer-fingerprint") {
		t.Errorf("no CA, no fingerprint: %v", err)
	}
}

func TestVerifyX509Name(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	subj := pkix.Name{
		Country: []string{"DE"}, Province: []string{"Baden-Wuerttemberg"}, Organization: []string{"Example, Inc."},
		OrganizationalUnit: []string{"VPN"}, CommonName: "vpn.example.com",
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "ops@example.com"}},
	}
	srv := issueCert(t, certSpec{subject: subj}, ca)
	// Go writes C, ST, O, OU, CN, then the extra names, in that order.
	full := "C=DE, ST=Baden-Wuerttemberg, O=Example, Inc., OU=VPN, CN=vpn.example.com, emailAddress=ops@example.com"
	if got := openvpnSubject(srv.cert); got != full {
		t.Fatalf("openvpnSubject = %q, want %q", got, full)
	}
	for _, tc := range []struct {
		name, x509Name, typ, want string
	}{
		{"subject match", full, "subject", ""},
		{"subject is the default type", full, "", ""},
		{"subject mismatch", "CN=vpn.example.com", "subject", `verify-x509-name: server certificate subject "` + full + `" is not "CN=vpn.example.com"`},
		{"name match", "vpn.example.com", "name", ""},
		{"name mismatch", "vpn.example.org", "name", `common name "vpn.example.com" is not "vpn.example.org"`},
		{"name-prefix match", "vpn.", "name-prefix", ""},
		{"name-prefix mismatch", "gw.", "name-prefix", `does not start with "gw."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, handshake(t, tlsParams{CA: ca.pem, VerifyX509Name: tc.x509Name, VerifyX509Type: tc.typ}, srv, nil), tc.want)
		})
	}
	// Multi-valued RDNs (DER sorts the set) and control characters, as
	// OpenSSL prints them.
	raw, _ := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "A\x01B"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "x"}, {Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "y"}},
		{{Type: asn1.ObjectIdentifier{1, 2, 3}, Value: "z"}},
	})
	if got, want := openvpnSubject(&x509.Certificate{RawSubject: raw}), `O=A\01B, CN=y + OU=x, 1.2.3=z`; got != want {
		t.Errorf("openvpnSubject = %q, want %q", got, want)
	}
}

func makeCRL(t *testing.T, issuer *testCert, revoked ...*testCert) string {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.cert.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, issuer.cert, issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func TestCRLVerify(t *testing.T) {
	root := makeCert(t, "root", nil, true, nil, nil)
	inter := makeCert(t, "intermediate", root, true, nil, nil)
	good := makeCert(t, "good", inter, false, nil, nil)
	bad := makeCert(t, "revoked-server", inter, false, nil, nil)
	other := makeCert(t, "other-ca", nil, true, nil, nil)
	// The CRL of the intermediate revokes bad; the root's revokes nothing.
	crl := makeCRL(t, inter, bad) + makeCRL(t, root)
	for _, tc := range []struct {
		name string
		crl  string
		srv  *testCert
		want string
	}{
		{"not revoked", crl, good, ""},
		{"revoked", crl, bad, `crl-verify: server certificate "CN=revoked-server" (serial ` + strings.ToUpper(bad.cert.SerialNumber.Text(16)) + `) is revoked by its issuer "CN=intermediate"`},
		{"no CRL from the issuer", makeCRL(t, other, bad), bad, `crl-verify: the profile has no CRL signed by "CN=intermediate"`},
		{"intermediate revoked by the root", makeCRL(t, inter) + makeCRL(t, root, inter), good, `"CN=intermediate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runHandshake(t, tlsParams{CA: root.pem, CRL: tc.crl}, serverTLS([]*testCert{tc.srv, inter}, nil))
			wantErr(t, err, tc.want)
		})
	}
	if _, err := buildTLSConfig(tlsParams{CA: root.pem, CRL: "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"}); err == nil || !strings.Contains(err.Error(), "crl-verify") {
		t.Errorf("broken CRL: %v", err)
	}
}

func TestSHA1Chain(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca := issueCert(t, certSpec{subject: pkix.Name{CommonName: "old-ca"}, isCA: true, key: rk, sigAlg: x509.SHA1WithRSA}, nil)
	srvKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv := issueCert(t, certSpec{subject: pkix.Name{CommonName: "old-server", Organization: []string{"Legacy"}}, key: srvKey,
		eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ku: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, sigAlg: x509.SHA1WithRSA}, ca)
	if srv.cert.SignatureAlgorithm != x509.SHA1WithRSA {
		t.Fatalf("test certificate signed with %v", srv.cert.SignatureAlgorithm)
	}
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, RemoteCertTLS: "server"}, srv, nil),
		`server certificate "O=Legacy, CN=old-server" is signed with SHA1-RSA: SHA-1 signatures are refused (the profile option "tls-cert-profile insecure" allows them)`)
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, RemoteCertTLS: "server", CertProfile: "insecure"}, srv, nil), "")

	// The legacy path still checks signatures, issuers, validity and CRLs.
	impostorKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	impostor := issueCert(t, certSpec{subject: pkix.Name{CommonName: "old-ca"}, isCA: true, key: impostorKey, sigAlg: x509.SHA1WithRSA}, nil)
	forged := issueCert(t, certSpec{subject: pkix.Name{CommonName: "forged"}, key: srvKey, sigAlg: x509.SHA1WithRSA}, impostor)
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, CertProfile: "insecure"}, forged, nil), "SHA-1 signature by \"CN=old-ca\" does not verify")
	stranger := issueCert(t, certSpec{subject: pkix.Name{CommonName: "stranger"}, sigAlg: x509.ECDSAWithSHA1},
		issueCert(t, certSpec{subject: pkix.Name{CommonName: "unknown-ca"}, isCA: true}, nil))
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, CertProfile: "insecure"}, stranger, nil), `(issuer "CN=unknown-ca") is not signed by the profile's CA`)
	old := issueCert(t, certSpec{subject: pkix.Name{CommonName: "old-expired"}, key: srvKey, sigAlg: x509.SHA1WithRSA,
		notBefore: time.Now().Add(-72 * time.Hour), notAfter: time.Now().Add(-48 * time.Hour)}, ca)
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, CertProfile: "insecure"}, old, nil), `"CN=old-expired" is not valid now`)
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, CertProfile: "insecure", CRL: makeCRL(t, ca, srv)}, srv, nil), "is revoked")
	// A leaf (not a CA) cannot sign.
	leafSigned := issueCert(t, certSpec{subject: pkix.Name{CommonName: "by-leaf"}, key: rk, sigAlg: x509.SHA1WithRSA}, srv)
	wantErr(t, handshake(t, tlsParams{CA: ca.pem + srv.pem, CertProfile: "insecure"}, leafSigned, nil), "not a CA certificate")

	// ECDSA with SHA-1.
	ecCA := issueCert(t, certSpec{subject: pkix.Name{CommonName: "ec-ca"}, isCA: true}, nil)
	ecSrv := issueCert(t, certSpec{subject: pkix.Name{CommonName: "ec-sha1"}, sigAlg: x509.ECDSAWithSHA1}, ecCA)
	wantErr(t, handshake(t, tlsParams{CA: ecCA.pem}, ecSrv, nil), "is signed with ECDSA-SHA1: SHA-1 signatures are refused")
	wantErr(t, handshake(t, tlsParams{CA: ecCA.pem, CertProfile: "insecure"}, ecSrv, nil), "")

	// tls-cert-profile preferred refuses small RSA keys.
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallSrv := issueCert(t, certSpec{subject: pkix.Name{CommonName: "small"}, key: small}, ca)
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, CertProfile: "insecure"}, smallSrv, nil), "")
	wantErr(t, handshake(t, tlsParams{CA: ca.pem, CertProfile: "preferred"}, smallSrv, nil), `"CN=small" has a 1024-bit RSA key`)
}
