package engine

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// staticKeyBlock is an inline OpenVPN static key (tls-auth/tls-crypt).
func staticKeyBlock(t *testing.T, tag string) string {
	t.Helper()
	k := make([]byte, 256)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("<" + tag + ">\n-----BEGIN OpenVPN Static key V1-----\n")
	for i := 0; i < len(k); i += 16 {
		b.WriteString(hex.EncodeToString(k[i:i+16]) + "\n")
	}
	b.WriteString("-----END OpenVPN Static key V1-----\n</" + tag + ">\n")
	return b.String()
}

// engineOptions parses a minimal profile plus extra and returns what the
// engine takes from it.
func engineOptions(t *testing.T, extra string) (*profile.Profile, options) {
	t.Helper()
	ca := makeCert(t, "ca", nil, true, nil, nil)
	text := "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n" + ca.pem + "</ca>\n" + extra
	p, err := profile.Parse(text)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	o, err := optionsFromProfile(p, Credentials{}, nil)
	if err != nil {
		t.Fatalf("optionsFromProfile: %v", err)
	}
	return p, o
}

// TestProfileOptionsReachEngine shows the effect of profile options whose
// whole effect is a setting of the engine: the setting it changes.
func TestProfileOptionsReachEngine(t *testing.T) {
	t.Run("key-direction", func(t *testing.T) {
		for _, dir := range []int{0, 1} {
			_, o := engineOptions(t, staticKeyBlock(t, "tls-auth")+"key-direction "+string(rune('0'+dir))+"\n")
			if o.wrapMode != "tls-auth" || o.keyDir != dir {
				t.Errorf("key-direction %d: wrap %q dir %d", dir, o.wrapMode, o.keyDir)
			}
		}
	})
	t.Run("ncp-ciphers", func(t *testing.T) {
		_, o := engineOptions(t, "ncp-ciphers CHACHA20-POLY1305:AES-128-GCM\n")
		if !slices.Equal(o.dataCiphers, []string{"CHACHA20-POLY1305", "AES-128-GCM"}) {
			t.Errorf("offered %v", o.dataCiphers)
		}
	})
	t.Run("data-ciphers-fallback", func(t *testing.T) {
		p, o := engineOptions(t, "data-ciphers-fallback AES-256-CBC\n")
		if !slices.Contains(o.dataCiphers, "AES-256-CBC") {
			t.Errorf("offered %v", o.dataCiphers)
		}
		a := &attempt{c: &Client{cfg: Config{Profile: p}}, o: &o}
		if c, err := a.DataCipher(""); err != nil || c != "AES-256-CBC" {
			t.Errorf("nothing pushed: cipher %q, %v", c, err)
		}
	})
	t.Run("tls-timeout", func(t *testing.T) {
		_, o := engineOptions(t, "tls-timeout 5\n")
		if o.tlsTimeout != 5*time.Second {
			t.Errorf("tls-timeout %v", o.tlsTimeout)
		}
	})
	t.Run("auth", func(t *testing.T) {
		// The tls-auth HMAC is the auth digest: 20 bytes with SHA1, 32
		// with SHA256.
		_, sha1 := engineOptions(t, staticKeyBlock(t, "tls-auth")+"key-direction 1\n")
		_, sha256 := engineOptions(t, staticKeyBlock(t, "tls-auth")+"key-direction 1\nauth SHA256\n")
		w1, err1 := sha1.newWrapper()
		w2, err2 := sha256.newWrapper()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if w2.Overhead()-w1.Overhead() != 12 {
			t.Errorf("overhead SHA1 %d SHA256 %d", w1.Overhead(), w2.Overhead())
		}
	})
	t.Run("lport and nobind", func(t *testing.T) {
		p, _ := engineOptions(t, "lport 5000\n")
		list, _, err := buildRemoteList(p, Credentials{})
		if err != nil || list[0].lport != 5000 {
			t.Errorf("lport: %+v %v", list, err)
		}
		p, _ = engineOptions(t, "lport 5000\nnobind\n")
		list, _, err = buildRemoteList(p, Credentials{})
		if err != nil || list[0].lport != 0 {
			t.Errorf("lport with nobind: %+v %v", list, err)
		}
	})
	t.Run("connect-timeout", func(t *testing.T) {
		p, _ := engineOptions(t, "connect-timeout 9\n")
		list, _, err := buildRemoteList(p, Credentials{})
		if err != nil || list[0].pollTimeout != 9*time.Second {
			t.Errorf("connect-timeout: %+v %v", list, err)
		}
	})
	t.Run("static-challenge", func(t *testing.T) {
		for extra, want := range map[string]string{
			"static-challenge 'PIN?' 1\n":        "SCRV1:" + base64.StdEncoding.EncodeToString([]byte("pw")) + ":" + base64.StdEncoding.EncodeToString([]byte("123")),
			"static-challenge 'PIN?' 1 concat\n": "pw123",
		} {
			_, o := engineOptions(t, extra)
			o.creds = Credentials{Username: "u", Password: "pw", ChallengeResponse: "123"}
			if got := o.password(); got != want {
				t.Errorf("%q: password field %q, want %q", extra, got, want)
			}
		}
	})
	t.Run("compress", func(t *testing.T) {
		for extra, want := range map[string]framing{"compress\n": framingStub, "compress stub-v2\n": framingStubV2, "compress lzo\n": framingLZOStub} {
			p, _ := engineOptions(t, extra)
			if f := framingOf(p.Compression()); f != want {
				t.Errorf("%q: framing %v, want %v", extra, f, want)
			}
		}
	})
	t.Run("extra-certs", func(t *testing.T) {
		ca := makeCert(t, "root", nil, true, nil, nil)
		inter := makeCert(t, "intermediate", ca, true, nil, nil)
		client := makeCert(t, "client", inter, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
		_, o := engineOptions(t, "<cert>\n"+client.pem+"</cert>\n<key>\n"+keyPEM(t, "PRIVATE KEY", client.key)+"</key>\n<extra-certs>\n"+inter.pem+"</extra-certs>\n")
		cfg, err := buildTLSConfig(o.tls)
		if err != nil {
			t.Fatal(err)
		}
		sent, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		chain := sent.Certificate
		if len(chain) != 2 || !bytes.Equal(chain[1], inter.cert.Raw) {
			t.Errorf("client chain has %d certificates, want the client's and the intermediate", len(chain))
		}
	})
	t.Run("explicit-exit-notify", func(t *testing.T) {
		_, o := engineOptions(t, "explicit-exit-notify 3\n")
		if o.explicitExit != 3 {
			t.Errorf("explicit-exit-notify %d", o.explicitExit)
		}
	})
}
