package profile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t *testing.T, text string) *Profile {
	t.Helper()
	p, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// TestTestbedProfiles checks the profiles testbed/server.sh generates.
func TestTestbedProfiles(t *testing.T) {
	type want struct {
		remote                      Remote
		tlsKind                     string
		keyDir                      int
		cipher, auth                string
		userPass, challenge, hasKey bool
	}
	udp := Remote{"198.18.0.1", "1194", "udp"}
	cases := map[string]want{
		"a-udp-aes256gcm-tlscrypt":              {udp, "tls-crypt", -1, "", "", false, false, true},
		"b-tcp-aes256gcm-tlscrypt":              {Remote{"198.18.0.1", "1194", "tcp"}, "tls-crypt", -1, "", "", false, false, true},
		"c-udp-aes128gcm-tlsauth":               {udp, "tls-auth", 1, "", "SHA256", false, false, true},
		"d-udp-chacha20poly1305-tlscrypt":       {udp, "tls-crypt", -1, "", "", false, false, true},
		"e-udp-tlscryptv2":                      {udp, "tls-crypt-v2", -1, "", "", false, false, true},
		"f-udp-userpass-nocert":                 {udp, "tls-crypt", -1, "", "", true, false, false},
		"g-udp-cert-userpass-staticchallenge":   {udp, "tls-crypt", -1, "", "", true, true, true},
		"h-udp-legacy-aes256cbc-sha256-tlsauth": {udp, "tls-auth", 1, "AES-256-CBC", "SHA256", false, false, true},
		"i-udp6-dualstack-tunnel":               {Remote{"2001:2::1", "1194", "udp6"}, "tls-crypt", -1, "", "", false, false, true},
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			p := mustParse(t, readFile(t, filepath.Join("testdata/good", name+".ovpn")))
			if !reflect.DeepEqual(p.Remotes, []Remote{w.remote}) {
				t.Errorf("remotes %+v", p.Remotes)
			}
			kinds := map[string]string{"tls-auth": p.TLSAuth, "tls-crypt": p.TLSCrypt, "tls-crypt-v2": p.TLSCryptV2}
			for k, v := range kinds {
				if (k == w.tlsKind) != (v != "") {
					t.Errorf("%s set=%v", k, v != "")
				}
			}
			if p.KeyDirection != w.keyDir || p.Cipher != w.cipher || p.Auth != w.auth {
				t.Errorf("keydir %d cipher %q auth %q", p.KeyDirection, p.Cipher, p.Auth)
			}
			if p.AuthUserPass != w.userPass || (p.StaticChallenge != nil) != w.challenge {
				t.Errorf("auth-user-pass %v challenge %+v", p.AuthUserPass, p.StaticChallenge)
			}
			if (p.Cert != "" && p.Key != "") != w.hasKey {
				t.Errorf("cert/key presence wrong")
			}
			if !strings.Contains(p.CA, "BEGIN CERTIFICATE") || p.Dev != "tun" || !p.Nobind ||
				p.RemoteCertTLS != "server" || p.Verb != 3 || p.PingRestart != DefaultPingRestart {
				t.Errorf("common fields: dev %q nobind %v rct %q verb %d", p.Dev, p.Nobind, p.RemoteCertTLS, p.Verb)
			}
			if name != "b-tcp-aes256gcm-tlscrypt" && p.ExplicitExitNotify != 1 {
				t.Errorf("explicit-exit-notify %d", p.ExplicitExitNotify)
			}
			if w.challenge && (p.StaticChallenge.Text != "Enter PIN (123456)" || !p.StaticChallenge.Echo || p.StaticChallenge.Format != "scrv1") {
				t.Errorf("challenge %+v", p.StaticChallenge)
			}
			if len(p.Warnings) != 0 {
				t.Errorf("warnings %v", p.Warnings)
			}
		})
	}
}

// stripLines zeroes line numbers so profiles parsed from different text
// compare equal.
func stripLines(p *Profile) *Profile {
	c := p.Clone()
	for i := range c.Options {
		c.Options[i].Line = 0
	}
	for i := range c.Connections {
		c.Connections[i].Line = 0
		for j := range c.Connections[i].Options {
			c.Connections[i].Options[j].Line = 0
		}
	}
	for i := range c.Warnings {
		c.Warnings[i].Line = 0
	}
	return c
}

func checkRoundTrip(t *testing.T, p *Profile) {
	t.Helper()
	text := p.Render()
	q, err := Parse(text)
	if err != nil {
		t.Fatalf("rendered profile does not parse: %v\n%s", err, text)
	}
	if a, b := stripLines(p), stripLines(q); !reflect.DeepEqual(a, b) {
		t.Fatalf("round trip changed the profile\nfirst  %+v\nsecond %+v\ntext:\n%s", a, b, text)
	}
	if again := q.Render(); again != text {
		t.Fatalf("Render is not canonical:\n%s\n---\n%s", text, again)
	}
}

func TestRoundTripCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.ovpn")
	if len(files) < 9 {
		t.Fatalf("corpus has %d good profiles", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			checkRoundTrip(t, mustParse(t, readFile(t, f)))
		})
	}
}
