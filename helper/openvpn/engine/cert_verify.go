package engine

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serverVerifier checks the server's certificate chain the way OpenVPN
// does: against the profile's CA only (no hostname), or by SHA-256
// fingerprint, then the key-usage rules of remote-cert-tls/-ku/-eku,
// verify-x509-name and the CRL of crl-verify.
type serverVerifier struct {
	roots        []*x509.Certificate
	pool         *x509.CertPool
	fingerprints [][sha256.Size]byte

	requireKU bool     // remote-cert-tls server: KU present and usable for TLS
	kuSets    []uint16 // remote-cert-ku, OpenVPN's bit order (digitalSignature = 0x80)
	eku       string   // OID or OpenSSL long/short name; "" none

	x509Name, x509Type string
	crls               []*x509.RevocationList

	allowSHA1  bool // tls-cert-profile insecure
	minRSABits int  // tls-cert-profile preferred/suiteb: 2048

	now func() time.Time
}

func newServerVerifier(p tlsParams, extraRoots []*x509.Certificate) (*serverVerifier, error) {
	v := &serverVerifier{now: time.Now}
	cas, err := parseCerts(p.CA)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if p.CA != "" && len(cas) == 0 {
		return nil, errors.New("ca: no certificate in the profile's ca")
	}
	v.roots = append(cas, extraRoots...)
	for _, f := range p.PeerFingerprints {
		b, err := hex.DecodeString(strings.ReplaceAll(f, ":", ""))
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("peer-fingerprint %q: not a SHA-256 fingerprint (32 hex bytes separated by ':')", f)
		}
		v.fingerprints = append(v.fingerprints, [sha256.Size]byte(b))
	}
	if len(v.roots) == 0 && len(v.fingerprints) == 0 {
		return nil, errors.New("ca: no CA certificate and no peer-fingerprint in the profile: the server could not be verified")
	}
	v.pool = x509.NewCertPool()
	for _, c := range v.roots {
		v.pool.AddCert(c)
	}

	switch strings.ToLower(p.RemoteCertTLS) {
	case "":
	case "server":
		v.requireKU = true
		v.eku = "serverAuth"
	default:
		return nil, fmt.Errorf("remote-cert-tls %q: a client can only require \"server\"", p.RemoteCertTLS)
	}
	for _, s := range p.RemoteCertKU {
		k, err := strconv.ParseUint(s, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("remote-cert-ku %q: not a hex key usage", s)
		}
		v.kuSets = append(v.kuSets, uint16(k))
	}
	if p.RemoteCertEKU != "" {
		v.eku = p.RemoteCertEKU
	}
	v.x509Name, v.x509Type = p.VerifyX509Name, p.VerifyX509Type
	switch v.x509Type {
	case "", "subject", "name", "name-prefix":
	default:
		return nil, fmt.Errorf("verify-x509-name: unknown type %q (want subject, name or name-prefix)", v.x509Type)
	}
	if v.crls, err = parseCRLs(p.CRL); err != nil {
		return nil, fmt.Errorf("crl-verify: %w", err)
	}
	switch strings.ToLower(p.CertProfile) {
	case "", "legacy":
	case "insecure":
		v.allowSHA1 = true
	case "preferred", "suiteb":
		v.minRSABits = 2048
	default:
		return nil, fmt.Errorf("tls-cert-profile %q: want insecure, legacy, preferred or suiteb", p.CertProfile)
	}
	return v, nil
}

func parseCRLs(text string) ([]*x509.RevocationList, error) {
	out, err := parsePEMBlocks(text, "X509 CRL", "CRL", x509.ParseRevocationList)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) != "" && len(out) == 0 {
		return nil, errors.New("no \"X509 CRL\" PEM block")
	}
	return out, nil
}

// certName names a certificate in errors: its subject as OpenVPN prints it.
func certName(c *x509.Certificate) string { return strconv.Quote(openvpnSubject(c)) }

// verify is the tls.Config.VerifyPeerCertificate hook.
func (v *serverVerifier) verify(raw [][]byte) error {
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
	leaf := certs[0]
	if len(v.fingerprints) > 0 {
		sum := sha256.Sum256(leaf.Raw)
		if !slices.Contains(v.fingerprints, sum) {
			return fmt.Errorf("peer-fingerprint: server certificate %s has SHA-256 fingerprint %s, which the profile does not list",
				certName(leaf), formatFingerprint(sum[:]))
		}
	}
	var chain []*x509.Certificate
	if len(v.roots) > 0 {
		var err error
		if chain, err = v.verifyChain(certs); err != nil {
			return err
		}
	}
	if err := v.checkLeafUsage(leaf); err != nil {
		return err
	}
	if err := checkX509Name(leaf, v.x509Name, v.x509Type); err != nil {
		return err
	}
	if len(v.crls) > 0 && chain != nil {
		if err := v.checkRevocation(chain); err != nil {
			return err
		}
	}
	return nil
}

func formatFingerprint(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

func weakSignature(c *x509.Certificate) bool {
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
		return true
	}
	return false
}

// verifyChain returns the chain from the leaf to one of the profile's CAs.
func (v *serverVerifier) verifyChain(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	for _, c := range certs {
		if rk, ok := c.PublicKey.(*rsa.PublicKey); ok && v.minRSABits > 0 && rk.N.BitLen() < v.minRSABits {
			return nil, fmt.Errorf("server certificate %s has a %d-bit RSA key; tls-cert-profile needs at least %d bits",
				certName(c), rk.N.BitLen(), v.minRSABits)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// EKUs are OpenVPN's business (leaf only, when asked): accept any here.
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots: v.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime: v.now(),
	})
	if err == nil {
		return chains[0], nil
	}
	// crypto/x509 cannot check SHA-1 signatures at all; old PKIs need them.
	for _, c := range certs {
		if weakSignature(c) && !bytes.Equal(c.RawIssuer, c.RawSubject) {
			if !v.allowSHA1 {
				return nil, fmt.Errorf("server certificate %s is signed with %v: SHA-1 signatures are refused (the profile option \"tls-cert-profile insecure\" allows them)",
					certName(c), c.SignatureAlgorithm)
			}
			return v.verifyChainLegacy(certs)
		}
	}
	return nil, explainVerifyError(certs[0], err)
}

func explainVerifyError(leaf *x509.Certificate, err error) error {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		c := inv.Cert
		if c == nil {
			c = leaf
		}
		return fmt.Errorf("server certificate %s is not valid now (valid from %s until %s): %w",
			certName(c), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), err)
	case errors.As(err, &ua):
		return fmt.Errorf("server certificate %s (issuer %q) is not signed by the profile's CA: %w",
			certName(leaf), openvpnIssuer(leaf), err)
	}
	return fmt.Errorf("verify server certificate %s: %w", certName(leaf), err)
}

func openvpnIssuer(c *x509.Certificate) string {
	return openvpnSubject(&x509.Certificate{RawSubject: c.RawIssuer, Subject: c.Issuer})
}

// verifyChainLegacy builds and checks the chain itself, for PKIs with
// SHA-1 signatures (tls-cert-profile insecure): validity periods, CA
// flags and every signature, SHA-1 ones with crypto/rsa or crypto/ecdsa.
func (v *serverVerifier) verifyChainLegacy(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	now := v.now()
	cur := certs[0]
	chain := []*x509.Certificate{cur}
	for depth := 0; depth < 16; depth++ {
		if now.Before(cur.NotBefore) || now.After(cur.NotAfter) {
			return nil, fmt.Errorf("server certificate %s is not valid now (valid from %s until %s)",
				certName(cur), cur.NotBefore.UTC().Format(time.RFC3339), cur.NotAfter.UTC().Format(time.RFC3339))
		}
		for _, r := range v.roots {
			if r.Equal(cur) {
				return chain, nil
			}
		}
		var parent *x509.Certificate
		var sigErr error
		for _, cand := range append(slices.Clone(v.roots), certs[1:]...) {
			if !bytes.Equal(cand.RawSubject, cur.RawIssuer) || cand.Equal(cur) {
				continue
			}
			if err := checkSignatureLegacy(cur, cand); err != nil {
				sigErr = err
				continue
			}
			parent = cand
			break
		}
		if parent == nil {
			if sigErr != nil {
				return nil, fmt.Errorf("server certificate %s: %w", certName(cur), sigErr)
			}
			return nil, fmt.Errorf("server certificate %s (issuer %q) is not signed by the profile's CA", certName(cur), openvpnIssuer(cur))
		}
		chain = append(chain, parent)
		cur = parent
	}
	return nil, fmt.Errorf("server certificate %s: chain longer than 16 certificates", certName(certs[0]))
}

func checkSignatureLegacy(child, parent *x509.Certificate) error {
	if (parent.Version == 3 && !parent.BasicConstraintsValid) || (parent.BasicConstraintsValid && !parent.IsCA) {
		return fmt.Errorf("issuer %s is not a CA certificate", certName(parent))
	}
	if parent.KeyUsage != 0 && parent.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("issuer %s may not sign certificates (key usage)", certName(parent))
	}
	var h crypto.Hash
	switch child.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
		h = crypto.SHA1
	default:
		if err := child.CheckSignatureFrom(parent); err != nil {
			return fmt.Errorf("signature by %s: %w", certName(parent), err)
		}
		return nil
	}
	sum := sha1.Sum(child.RawTBSCertificate)
	var ok bool
	switch pub := parent.PublicKey.(type) {
	case *rsa.PublicKey:
		ok = child.SignatureAlgorithm == x509.SHA1WithRSA && rsa.VerifyPKCS1v15(pub, h, sum[:], child.Signature) == nil
	case *ecdsa.PublicKey:
		ok = child.SignatureAlgorithm == x509.ECDSAWithSHA1 && ecdsa.VerifyASN1(pub, sum[:], child.Signature)
	}
	if !ok {
		return fmt.Errorf("SHA-1 signature by %s does not verify", certName(parent))
	}
	return nil
}

var oidKeyUsageExt = asn1.ObjectIdentifier{2, 5, 29, 15}

// openvpnKU converts Go's key usage to OpenVPN's notation for
// remote-cert-ku: the first byte of the ASN.1 bit string, so
// digitalSignature = 0x80, keyEncipherment = 0x20, keyAgreement = 0x08.
func openvpnKU(ku x509.KeyUsage) uint16 {
	var n uint16
	for i := range 8 {
		if ku&(1<<i) != 0 {
			n |= 1 << (7 - i)
		}
	}
	return n
}

func (v *serverVerifier) checkLeafUsage(c *x509.Certificate) error {
	if v.requireKU || len(v.kuSets) > 0 {
		present := slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidKeyUsageExt) })
		if !present {
			return fmt.Errorf("remote-cert-tls/remote-cert-ku: server certificate %s has no key usage extension", certName(c))
		}
		ku := openvpnKU(c.KeyUsage)
		if v.requireKU && ku&(0x80|0x20|0x08) == 0 {
			return fmt.Errorf("remote-cert-tls server: server certificate %s has key usage %02x, which allows none of digitalSignature, keyEncipherment, keyAgreement",
				certName(c), ku)
		}
		if len(v.kuSets) > 0 && !slices.ContainsFunc(v.kuSets, func(want uint16) bool { return want != 0 && ku&want == want }) {
			return fmt.Errorf("remote-cert-ku: server certificate %s has key usage %02x, not one of %s", certName(c), ku, formatKUSets(v.kuSets))
		}
	}
	if v.eku != "" && !hasEKU(c, v.eku) {
		return fmt.Errorf("remote-cert-tls/remote-cert-eku: server certificate %s lacks extended key usage %q", certName(c), ekuDisplay(v.eku))
	}
	return nil
}

func formatKUSets(s []uint16) string {
	parts := make([]string, len(s))
	for i, k := range s {
		parts[i] = fmt.Sprintf("%02x", k)
	}
	return strings.Join(parts, ", ")
}

// ekuNames maps Go's extended key usages to their OID and the OpenSSL
// short and long names OpenVPN compares remote-cert-eku with.
var ekuNames = map[x509.ExtKeyUsage][3]string{
	x509.ExtKeyUsageServerAuth:      {"1.3.6.1.5.5.7.3.1", "serverAuth", "TLS Web Server Authentication"},
	x509.ExtKeyUsageClientAuth:      {"1.3.6.1.5.5.7.3.2", "clientAuth", "TLS Web Client Authentication"},
	x509.ExtKeyUsageCodeSigning:     {"1.3.6.1.5.5.7.3.3", "codeSigning", "Code Signing"},
	x509.ExtKeyUsageEmailProtection: {"1.3.6.1.5.5.7.3.4", "emailProtection", "E-mail Protection"},
	x509.ExtKeyUsageTimeStamping:    {"1.3.6.1.5.5.7.3.8", "timeStamping", "Time Stamping"},
	x509.ExtKeyUsageOCSPSigning:     {"1.3.6.1.5.5.7.3.9", "OCSPSigning", "OCSP Signing"},
	x509.ExtKeyUsageAny:             {"2.5.29.37.0", "anyExtendedKeyUsage", "Any Extended Key Usage"},
}

func ekuDisplay(want string) string {
	if want == "serverAuth" {
		return "TLS Web Server Authentication"
	}
	return want
}

func hasEKU(c *x509.Certificate, want string) bool {
	for _, u := range c.ExtKeyUsage {
		if n, ok := ekuNames[u]; ok && slices.Contains(n[:], want) {
			return true
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		if oid.String() == want {
			return true
		}
	}
	return false
}

// checkRevocation checks every certificate of the chain below the root
// against the CRLs its issuer signed. The leaf's issuer must have one (as
// OpenSSL's CRL check demands); higher levels are checked when present.
func (v *serverVerifier) checkRevocation(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		found := false
		for _, crl := range v.crls {
			if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
				continue
			}
			if err := crl.CheckSignatureFrom(issuer); err != nil {
				continue
			}
			found = true
			for _, e := range crl.RevokedCertificateEntries {
				if e.SerialNumber != nil && e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					return fmt.Errorf("crl-verify: server certificate %s (serial %X) is revoked by its issuer %s (since %s)",
						certName(cert), cert.SerialNumber, certName(issuer), e.RevocationTime.UTC().Format(time.RFC3339))
				}
			}
		}
		if !found && i == 0 {
			return fmt.Errorf("crl-verify: the profile has no CRL signed by %s, the issuer of server certificate %s",
				certName(issuer), certName(cert))
		}
	}
	return nil
}
