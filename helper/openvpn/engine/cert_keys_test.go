package engine

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

func runOpenSSL(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func writeTemp(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEncryptedKeys encrypts keys with openssl in every form old and new
// OpenVPN profiles carry, and connects with each.
func TestEncryptedKeys(t *testing.T) {
	testenv.RequireCommand(t, "openssl")
	dir := t.TempDir()
	ca := makeCert(t, "ca", nil, true, nil, nil)
	server := makeCert(t, "server", ca, false, nil, nil)
	ecClient := makeCert(t, "ec-client", ca, false, nil, nil)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaClient := makeCert(t, "rsa-client", ca, false, nil, rk)
	ecPlain := writeTemp(t, dir, "ec.key", keyPEM(t, "PRIVATE KEY", ecClient.key))
	rsaPlain := writeTemp(t, dir, "rsa.key", keyPEM(t, "PRIVATE KEY", rsaClient.key))
	const pass = "s3cret pass"
	cases := []struct {
		name   string
		client *testCert
		args   []string
	}{
		{"PKCS#8 AES-256 PBKDF2-SHA256", ecClient, []string{"pkcs8", "-topk8", "-in", ecPlain, "-v2", "aes-256-cbc", "-passout", "pass:" + pass}},
		{"PKCS#8 3DES PBKDF2-SHA1", rsaClient, []string{"pkcs8", "-topk8", "-in", rsaPlain, "-v2", "des3", "-v2prf", "hmacWithSHA1", "-passout", "pass:" + pass}},
		{"PKCS#8 AES-128 PBKDF2-SHA512", ecClient, []string{"pkcs8", "-topk8", "-in", ecPlain, "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512", "-passout", "pass:" + pass}},
		{"PKCS#8 AES-256 scrypt", ecClient, []string{"pkcs8", "-topk8", "-in", ecPlain, "-scrypt", "-passout", "pass:" + pass}},
		{"legacy PEM RSA AES-256", rsaClient, []string{"rsa", "-in", rsaPlain, "-traditional", "-aes256", "-passout", "pass:" + pass}},
		{"legacy PEM RSA 3DES", rsaClient, []string{"rsa", "-in", rsaPlain, "-traditional", "-des3", "-passout", "pass:" + pass}},
		{"legacy PEM EC AES-128", ecClient, []string{"ec", "-in", ecPlain, "-aes128", "-passout", "pass:" + pass}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "enc"+string(rune('a'+i))+".pem")
			runOpenSSL(t, append(tc.args, "-out", out)...)
			enc := readFile(t, out)
			if !keyPEMEncrypted(enc) {
				t.Fatalf("openssl output not recognised as encrypted:\n%s", enc)
			}
			p := tlsParams{CA: ca.pem, Cert: tc.client.pem, Key: enc}
			if _, err := buildTLSConfig(p); !errors.Is(err, ErrKeyPassphraseNeeded) || err.Error() != "key: private key is encrypted: passphrase needed" {
				t.Errorf("no passphrase: %v", err)
			}
			p.KeyPassphrase = "wrong"
			if _, err := buildTLSConfig(p); !errors.Is(err, ErrKeyPassphraseWrong) {
				t.Errorf("wrong passphrase: %v", err)
			}
			p.KeyPassphrase = pass
			_, err := runHandshake(t, p, serverTLS([]*testCert{server}, ca))
			wantErr(t, err, "")
		})
	}
	// An unsupported PBES1 scheme gets a clear error, not "wrong passphrase".
	out := filepath.Join(dir, "pbes1.pem")
	runOpenSSL(t, "pkcs8", "-topk8", "-in", ecPlain, "-v1", "PBE-SHA1-3DES", "-passout", "pass:"+pass, "-out", out)
	_, err = buildTLSConfig(tlsParams{CA: ca.pem, Cert: ecClient.pem, Key: readFile(t, out), KeyPassphrase: pass})
	wantErr(t, err, "only PBES2")
}

// TestPKCS12 loads bundles made by openssl pkcs12 -export.
func TestPKCS12(t *testing.T) {
	testenv.RequireCommand(t, "openssl")
	dir := t.TempDir()
	root := makeCert(t, "root", nil, true, nil, nil)
	inter := makeCert(t, "intermediate", root, true, nil, nil)
	client := makeCert(t, "p12-client", inter, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	server := makeCert(t, "server", root, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	certFile := writeTemp(t, dir, "client.crt", client.pem)
	keyFile := writeTemp(t, dir, "client.key", keyPEM(t, "PRIVATE KEY", client.key))
	chainFile := writeTemp(t, dir, "chain.crt", inter.pem+root.pem)
	export := func(name string, extra ...string) string {
		out := filepath.Join(dir, name+".p12")
		runOpenSSL(t, append([]string{"pkcs12", "-export", "-in", certFile, "-inkey", keyFile, "-certfile", chainFile, "-out", out}, extra...)...)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		// As in a profile: base64 in lines of 64.
		s := base64.StdEncoding.EncodeToString(b)
		var lines []string
		for len(s) > 64 {
			lines, s = append(lines, s[:64]), s[64:]
		}
		return strings.Join(append(lines, s), "\n") + "\n"
	}
	const pass = "p12pass"
	modern := export("modern", "-passout", "pass:"+pass)
	legacy := export("legacy", "-passout", "pass:"+pass, "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1")
	nopass := export("nopass", "-passout", "pass:")
	srv := serverTLS([]*testCert{server}, root)
	for _, tc := range []struct {
		name string
		p    tlsParams
		want string
	}{
		{"AES bundle, CA from the bundle", tlsParams{PKCS12: modern, KeyPassphrase: pass, RemoteCertTLS: "server"}, ""},
		{"3DES bundle, profile CA, bundle CAs as chain", tlsParams{CA: root.pem, PKCS12: legacy, KeyPassphrase: pass}, ""},
		{"no password", tlsParams{PKCS12: nopass}, ""},
		{"passphrase given for a bundle without one", tlsParams{PKCS12: nopass, KeyPassphrase: "unneeded"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runHandshake(t, tc.p, srv)
			wantErr(t, err, tc.want)
		})
	}
	if _, err := buildTLSConfig(tlsParams{PKCS12: modern}); !errors.Is(err, ErrKeyPassphraseNeeded) {
		t.Errorf("no passphrase: %v", err)
	}
	if _, err := buildTLSConfig(tlsParams{PKCS12: modern, KeyPassphrase: "nope"}); !errors.Is(err, ErrKeyPassphraseWrong) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := buildTLSConfig(tlsParams{PKCS12: "AAAA"}); err == nil || !strings.Contains(err.Error(), "pkcs12") {
		t.Errorf("garbage bundle: %v", err)
	}
	if _, err := buildTLSConfig(tlsParams{CA: root.pem, PKCS12: nopass, Cert: client.pem, Key: keyPEM(t, "PRIVATE KEY", client.key)}); err == nil {
		t.Error("pkcs12 together with cert and key accepted")
	}

	// Through the profile parser and engine.New, as the backend uses it.
	text := "client\ndev tun\nremote 192.0.2.1 1194\n<pkcs12>\n" + modern + "</pkcs12>\n"
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if !NeedsKeyPassphrase(prof) {
		t.Error("NeedsKeyPassphrase = false for a protected bundle")
	}
	if _, err := New(Config{Profile: prof, Tun: &nsTun{}}); !errors.Is(err, ErrKeyPassphraseNeeded) {
		t.Errorf("New without passphrase: %v", err)
	}
	if _, err := New(Config{Profile: prof, Tun: &nsTun{}, Credentials: Credentials{KeyPassphrase: pass}}); err != nil {
		t.Errorf("New with passphrase: %v", err)
	}
	prof2, err := profile.Parse("client\ndev tun\nremote 192.0.2.1 1194\n<pkcs12>\n" + nopass + "</pkcs12>\n")
	if err != nil {
		t.Fatal(err)
	}
	if NeedsKeyPassphrase(prof2) {
		t.Error("NeedsKeyPassphrase = true for a bundle without password")
	}
}

// FuzzPrivateKeyPEM feeds profile key blocks (untrusted input) to the key
// parser: errors are fine, panics and runaway work are not.
func FuzzPrivateKeyPEM(f *testing.F) {
	f.Add("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgAAAAAAAAAAAICCAAwDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEAAAAAAAAAAAAAAAAAAAAAAEQAAAAAAAAAAAAAAAAAAAAAA=\n-----END ENCRYPTED PRIVATE KEY-----\n", "pass")
	f.Add("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00000000000000000000000000000000\n\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE KEY-----\n", "pass")
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "")
	f.Fuzz(func(t *testing.T, keyPEM, pass string) {
		_, _ = parsePrivateKeyPEM(keyPEM, pass)
	})
}
