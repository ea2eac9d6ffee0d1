package engine

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// tlsParams is what the TLS client needs from the profile (and the key
// passphrase from the caller).
type tlsParams struct {
	CA, Cert, Key  string // PEM; Key may be encrypted
	ExtraCerts     string // PEM, sent after the client certificate
	PKCS12         string // base64 PKCS#12 bundle (instead of Cert and Key)
	KeyPassphrase  string // opens an encrypted Key or PKCS12; never logged
	CRL            string // PEM "X509 CRL" blocks (crl-verify)
	RemoteCertTLS  string // "server" to require KU and EKU serverAuth, "" for none
	RemoteCertKU   []string
	RemoteCertEKU  string
	VerifyX509Name string
	VerifyX509Type string // "subject" (default), "name", "name-prefix"
	// PeerFingerprints are SHA-256 fingerprints ("AB:CD:…") the server's
	// certificate must have one of; without a CA they replace the CA check.
	PeerFingerprints []string
	MinVersion       string // tls-version-min: "1.0", "1.1", "1.2", "1.3"
	MinOrHighest     bool   // tls-version-min … or-highest
	MaxVersion       string // tls-version-max
	Cipher           string // tls-cipher (TLS 1.2 suites, OpenSSL or IANA names)
	CipherSuites     string // tls-ciphersuites (TLS 1.3)
	Groups           string // tls-groups
	CertProfile      string // tls-cert-profile: insecure, legacy, preferred, suiteb

	// built, when set, keeps the config built from these parameters, so
	// renegotiations do not decrypt keys and parse bundles again.
	built *builtTLS
}

type builtTLS struct {
	once sync.Once
	cfg  *tls.Config
	err  error
	ver  *serverVerifier // the server check in cfg (Prepared.Warm reuses its roots)
}

// tlsParamsFromProfile collects the profile's certificate and TLS options.
func tlsParamsFromProfile(p *profile.Profile, keyPassphrase string) tlsParams {
	return tlsParams{
		CA: p.CA, Cert: p.Cert, Key: p.Key, ExtraCerts: p.ExtraCerts, PKCS12: p.PKCS12,
		KeyPassphrase: keyPassphrase, CRL: p.CRLVerify,
		RemoteCertTLS: p.RemoteCertTLS, RemoteCertKU: p.RemoteCertKU, RemoteCertEKU: p.RemoteCertEKU,
		VerifyX509Name: p.VerifyX509Name, VerifyX509Type: p.VerifyX509Type,
		PeerFingerprints: p.PeerFingerprints,
		MinVersion:       p.TLSVersionMin, MinOrHighest: p.TLSVersionMinOrHighest, MaxVersion: p.TLSVersionMax,
		Cipher: p.TLSCipher, CipherSuites: p.TLSCipherSuites, Groups: p.TLSGroups,
		CertProfile: p.TLSCertProfile,
		built:       &builtTLS{},
	}
}

// NeedsKeyPassphrase reports whether the profile's private key (an
// encrypted PEM key, or a PKCS#12 bundle with a password) cannot be opened
// without Credentials.KeyPassphrase — for a front-end that wants to ask
// before connecting.
func NeedsKeyPassphrase(p *profile.Profile) bool {
	if p.Key != "" {
		return keyPEMEncrypted(p.Key)
	}
	if p.PKCS12 != "" {
		_, _, err := loadPKCS12(p.PKCS12, "", p.CA != "")
		return errors.Is(err, ErrKeyPassphraseNeeded)
	}
	return false
}

// buildTLSConfig makes the crypto/tls client config for the control channel:
// the server is verified against the profile's CA (or fingerprints) only —
// OpenVPN does no hostname check — with OpenVPN's key-usage, name and CRL
// rules. Each call returns a fresh copy.
func buildTLSConfig(p tlsParams) (*tls.Config, error) {
	if p.built == nil {
		cfg, _, err := compileTLSConfig(p)
		return cfg, err
	}
	b := p.built
	b.once.Do(func() { b.cfg, b.ver, b.err = compileTLSConfig(p) })
	if b.err != nil {
		return nil, b.err
	}
	return b.cfg.Clone(), nil
}

func compileTLSConfig(p tlsParams) (*tls.Config, *serverVerifier, error) {
	id, err := loadClientIdentity(p)
	if err != nil {
		return nil, nil, err
	}
	ver, err := newServerVerifier(p, id.p12CAs)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		// Each TLS record is one control message to OpenVPN; Go's dynamic
		// record sizing would split large messages.
		DynamicRecordSizingDisabled: true,
		MinVersion:                  tls.VersionTLS12,
		// Verification is done by ver: CA from the profile, no hostname.
		InsecureSkipVerify: true,
		// OpenVPN's TLS is never resumed.
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return ver.verify(raw)
		},
	}
	if id.cert != nil {
		// Always send the profile's certificate, as OpenVPN does, whatever
		// CA names the server's request lists.
		cert := id.cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	if err := setTLSVersions(cfg, p); err != nil {
		return nil, nil, err
	}
	if err := setCipherSuites(cfg, p); err != nil {
		return nil, nil, err
	}
	if err := setGroups(cfg, p.Groups); err != nil {
		return nil, nil, err
	}
	return cfg, ver, nil
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

func setTLSVersions(cfg *tls.Config, p tlsParams) error {
	if p.MinVersion != "" {
		// "or-highest" only matters when the library cannot do the
		// minimum; Go does everything up to 1.3.
		v, err := parseTLSVersion(p.MinVersion)
		if err != nil {
			return err
		}
		cfg.MinVersion = v
	}
	switch p.MaxVersion {
	case "":
	case "1.2":
		cfg.MaxVersion = tls.VersionTLS12
	case "1.3":
		cfg.MaxVersion = tls.VersionTLS13
	case "1.0", "1.1":
		return fmt.Errorf("tls-version-max %s: TLS older than 1.2 is not supported", p.MaxVersion)
	default:
		return fmt.Errorf("tls-version-max %q: want 1.2 or 1.3", p.MaxVersion)
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < cfg.MinVersion {
		return fmt.Errorf("tls-version-min %s is above tls-version-max %s", p.MinVersion, p.MaxVersion)
	}
	return nil
}

// tls12Suites maps OpenSSL's names of the TLS 1.2 suites Go implements to
// their IDs; IANA names (with '-' or '_') are looked up in Go's own list.
var tls12Suites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
}

func lookupTLS12Suite(name string) (uint16, bool) {
	if id, ok := tls12Suites[strings.ToUpper(name)]; ok {
		return id, true
	}
	iana := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if s.Name == iana && slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			return s.ID, true
		}
	}
	return 0, false
}

// setCipherSuites honours tls-cipher (TLS 1.2) and tls-ciphersuites
// (TLS 1.3) as far as Go allows: concrete suite names are mapped; OpenSSL
// cipher-string keywords and exclusions (DEFAULT, HIGH, !aNULL, @SECLEVEL)
// cannot be evaluated and leave Go's defaults; finite-field DHE suites do
// not exist in Go.
func setCipherSuites(cfg *tls.Config, p tlsParams) error {
	if p.Cipher != "" {
		var ids []uint16
		var dhe, unknown []string
		expression := false
		for tok := range strings.FieldsFuncSeq(p.Cipher, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
			up := strings.ToUpper(tok)
			if id, ok := lookupTLS12Suite(tok); ok {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
				continue
			}
			switch {
			case strings.ContainsAny(tok[:1], "!+-@") || strings.Contains(tok, "+"):
				expression = true
			case strings.HasPrefix(up, "DHE-") || strings.HasPrefix(up, "EDH-") || strings.HasPrefix(up, "TLS-DHE-") || strings.HasPrefix(up, "TLS_DHE_"):
				dhe = append(dhe, tok)
			case strings.Contains(tok, "-") || strings.Contains(tok, "_"):
				unknown = append(unknown, tok)
			default:
				expression = true // a keyword such as DEFAULT, HIGH, ECDHE, aRSA
			}
		}
		switch {
		case len(ids) > 0:
			cfg.CipherSuites = ids
		case expression:
			// Go's defaults stand in for an OpenSSL cipher expression.
		case len(dhe) > 0:
			if cfg.MaxVersion == tls.VersionTLS12 {
				return fmt.Errorf("tls-cipher %q: only finite-field DHE suites (%s), which this client (Go's TLS) does not implement, and tls-version-max 1.2 rules out TLS 1.3",
					p.Cipher, strings.Join(dhe, ", "))
			}
			// No usable TLS 1.2 suite: only TLS 1.3 can work.
			cfg.MinVersion = tls.VersionTLS13
		default:
			return fmt.Errorf("tls-cipher %q: no cipher suite this client supports (unknown: %s)", p.Cipher, strings.Join(unknown, ", "))
		}
	}
	if p.CipherSuites != "" {
		// Go always offers its three TLS 1.3 suites and cannot be
		// restricted; refuse only a list none of which it has.
		var known []string
		for tok := range strings.FieldsFuncSeq(p.CipherSuites, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
			name := strings.ToUpper(strings.ReplaceAll(tok, "-", "_"))
			for _, s := range tls.CipherSuites() {
				if s.Name == name && slices.Contains(s.SupportedVersions, tls.VersionTLS13) {
					known = append(known, name)
				}
			}
		}
		if len(known) == 0 && cfg.MaxVersion != tls.VersionTLS12 {
			return fmt.Errorf("tls-ciphersuites %q: none is a TLS 1.3 suite this client supports (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)", p.CipherSuites)
		}
	}
	return nil
}

// tlsGroups maps OpenSSL group names (lower case) to Go's; nil means the
// group is known but Go does not implement it.
var tlsGroups = map[string]*tls.CurveID{
	"x25519":             ptr(tls.X25519),
	"secp256r1":          ptr(tls.CurveP256),
	"prime256v1":         ptr(tls.CurveP256),
	"p-256":              ptr(tls.CurveP256),
	"secp384r1":          ptr(tls.CurveP384),
	"p-384":              ptr(tls.CurveP384),
	"secp521r1":          ptr(tls.CurveP521),
	"p-521":              ptr(tls.CurveP521),
	"x25519mlkem768":     ptr(tls.X25519MLKEM768),
	"secp256r1mlkem768":  ptr(tls.SecP256r1MLKEM768),
	"secp384r1mlkem1024": ptr(tls.SecP384r1MLKEM1024),
	"x448":               nil,
	"ffdhe2048":          nil,
	"ffdhe3072":          nil,
	"ffdhe4096":          nil,
	"ffdhe6144":          nil,
	"ffdhe8192":          nil,
	"brainpoolp256r1":    nil,
	"brainpoolp384r1":    nil,
	"brainpoolp512r1":    nil,
	"x448mlkem1024":      nil,
}

func ptr[T any](v T) *T { return &v }

// setGroups honours tls-groups: the groups Go has, in the profile's order.
func setGroups(cfg *tls.Config, groups string) error {
	if groups == "" {
		return nil
	}
	var ids []tls.CurveID
	var missing []string
	for tok := range strings.FieldsFuncSeq(groups, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, known := tlsGroups[strings.ToLower(tok)]
		if !known {
			return fmt.Errorf("tls-groups %q: unknown group %q", groups, tok)
		}
		if id == nil {
			missing = append(missing, tok)
			continue
		}
		if !slices.Contains(ids, *id) {
			ids = append(ids, *id)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("tls-groups %q: this client (Go's TLS) implements none of %s", groups, strings.Join(missing, ", "))
	}
	cfg.CurvePreferences = ids
	return nil
}

func parseCerts(text string) ([]*x509.Certificate, error) {
	return parsePEMBlocks(text, "CERTIFICATE", "certificate", x509.ParseCertificate)
}

// parsePEMBlocks parses every PEM block of one type in text, in order, and
// skips blocks of other types (profiles mix them in one inline block).
func parsePEMBlocks[T any](text, blockType, what string, parse func([]byte) (T, error)) ([]T, error) {
	var out []T
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out, nil
		}
		if b.Type != blockType {
			continue
		}
		v, err := parse(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, len(out)+1, err)
		}
		out = append(out, v)
	}
}

// explainHandshakeError adds what a bare TLS alert cannot say: Go has no
// finite-field DHE, so a TLS 1.2 server limited to DHE suites answers
// with handshake_failure.
func explainHandshakeError(err error) error {
	// crypto/tls reports a received alert only as text.
	if err != nil && strings.Contains(err.Error(), "remote error: tls: handshake failure") {
		return fmt.Errorf("%w (the server accepted none of the offered cipher suites or groups; a server allowing only DHE-RSA suites on TLS 1.2 cannot be reached: Go's TLS has no finite-field DHE)", err)
	}
	return err
}
