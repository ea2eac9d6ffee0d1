package engine

import (
	"slices"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

func TestOfferedCiphers(t *testing.T) {
	cases := []struct {
		name string
		p    profile.Profile
		want []string
	}{
		{"default", profile.Profile{}, []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}},
		// CBC only when the profile names it, wherever it does.
		{"cipher", profile.Profile{Cipher: "AES-256-CBC"}, []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305", "AES-256-CBC"}},
		{"data-ciphers", profile.Profile{DataCiphers: []string{"AES-128-GCM", "aes-128-cbc"}}, []string{"AES-128-GCM", "AES-128-CBC"}},
		{"fallback", profile.Profile{DataCiphersFallback: "AES-192-CBC"}, []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305", "AES-192-CBC"}},
		{"bf-cbc", profile.Profile{DataCiphers: []string{"AES-256-GCM", "BF-CBC"}}, []string{"AES-256-GCM"}},
	}
	for _, c := range cases {
		got, err := offeredCiphers(&c.p)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: offeredCiphers = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := offeredCiphers(&profile.Profile{DataCiphers: []string{"BF-CBC"}}); err == nil || !strings.Contains(err.Error(), "BF-CBC") {
		t.Errorf("BF-CBC only: %v", err)
	}
}

func TestDataCipherMustBeOffered(t *testing.T) {
	a := &attempt{c: &Client{cfg: Config{Profile: &profile.Profile{}}}, o: &options{dataCiphers: []string{"AES-256-GCM"}}}
	if _, err := a.DataCipher("AES-256-CBC"); err == nil {
		t.Error("a pushed CBC cipher the profile did not ask for was accepted")
	}
	if c, err := a.DataCipher("aes-256-gcm"); err != nil || c != "AES-256-GCM" {
		t.Errorf("dataCipher(aes-256-gcm) = %q, %v", c, err)
	}
	a.c.cfg.Profile.DataCiphersFallback = "AES-256-CBC"
	a.o.dataCiphers = append(a.o.dataCiphers, "AES-256-CBC")
	if c, err := a.DataCipher(""); err != nil || c != "AES-256-CBC" {
		t.Errorf("no pushed cipher: %q, %v; want the fallback", c, err)
	}
}
