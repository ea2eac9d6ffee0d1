package engine

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// identityProfile is a profile whose client authenticates with client's
// certificate and key (PKCS#8), issued by ca; body is added.
func identityProfile(t *testing.T, ca, client *testCert, body string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("client\ndev tun\nremote 192.0.2.1 1194 udp\n<ca>\n" + ca.pem + "</ca>\n<cert>\n" + client.pem +
		"</cert>\n<key>\n" + keyPEM(t, "PRIVATE KEY", client.key) + "</key>\n" + body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The TLS configuration prepared at registration is the one the Connect's
// engine uses (not parsed and built again before the first packet), unless
// the profile or the key's passphrase differ.
func TestPreparedTLSLentToNew(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	client := makeCert(t, "client", ca, false, nil, nil)
	prof := identityProfile(t, ca, client, "")
	pre, err := Prepare(prof, "")
	if err != nil {
		t.Fatal(err)
	}
	if pre.tls.built.cfg == nil {
		t.Fatal("Prepare did not build the TLS configuration")
	}
	c, err := New(Config{Profile: prof, Tun: &nsTun{}, Prepared: pre})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.tls.built != pre.tls.built {
		t.Error("New built the TLS configuration again although it was prepared")
	}

	c, err = New(Config{Profile: prof, Tun: &nsTun{}, Prepared: pre, Credentials: Credentials{KeyPassphrase: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.tls.built == pre.tls.built {
		t.Error("a configuration prepared without a passphrase was used with one")
	}
	other := identityProfile(t, ca, makeCert(t, "other", ca, false, nil, nil), "")
	c, err = New(Config{Profile: other, Tun: &nsTun{}, Prepared: pre})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.tls.built == pre.tls.built {
		t.Error("another profile's configuration was used")
	}
	if _, err := Prepare(identityProfile(t, ca, client, "tls-groups x448\n"), ""); err == nil {
		t.Error("Prepare accepted a profile New refuses")
	}
}

// Warm runs the client's handshake code with the profile's key (EC and
// RSA), signing and checking for real, and stops with its context.
func TestPreparedWarm(t *testing.T) {
	ca := makeCert(t, "ca", nil, true, nil, nil)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ec := makeCert(t, "ec-client", ca, false, nil, nil)
	for name, client := range map[string]*testCert{"ec": ec, "rsa": makeCert(t, "rsa-client", ca, false, nil, rk)} {
		pre, err := Prepare(identityProfile(t, ca, client, ""), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := pre.Warm(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// The signature is made and checked: a key that is not the
		// certificate's fails.
		other := makeCert(t, "other", ca, false, nil, nil)
		if name == "rsa" {
			other = makeCert(t, "other", ca, false, nil, mustRSA(t))
		}
		if err := warmSignature(&tls.Certificate{Leaf: client.cert, PrivateKey: other.key}, []byte("x")); err == nil {
			t.Errorf("%s: a signature by another key was taken as checked", name)
		}
	}
	// Without a client certificate there is no signature to warm.
	pre, err := Prepare(testProfile(t, "remote 192.0.2.1 1194 udp\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := pre.Warm(ctx); err != nil {
		t.Errorf("no client certificate: %v", err)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	pre, _ = Prepare(identityProfile(t, ca, ec, ""), "")
	if err := pre.Warm(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Warm with its context ended: %v", err)
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
