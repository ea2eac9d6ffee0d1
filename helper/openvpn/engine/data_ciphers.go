package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// offeredCiphers is what the client announces in IV_CIPHERS, in the
// profile's order: its data-ciphers (or the 2.6 default) restricted to
// what datachan implements. Legacy CBC ciphers are offered only when the
// profile asks for them — listed in data-ciphers, set with "cipher" (which
// OpenVPN 2.6 appends to data-ciphers) or as data-ciphers-fallback.
func offeredCiphers(p *profile.Profile) ([]string, error) {
	offer := p.DataCiphers
	if len(offer) == 0 {
		offer = []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}
	}
	var out []string
	add := func(c string) {
		c = strings.ToUpper(c)
		if (slices.Contains(datachan.SupportedCiphers(), c) || datachan.IsCBC(c)) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, c := range offer {
		add(c)
	}
	for _, c := range []string{p.Cipher, p.DataCiphersFallback} {
		if datachan.IsCBC(c) {
			add(c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("data-ciphers %s: none is supported (supported: %s, and when asked for %s)",
			strings.Join(offer, ":"), strings.Join(datachan.SupportedCiphers(), ":"), strings.Join(datachan.CBCCiphers(), ":"))
	}
	return out, nil
}

// DataCipher picks the cipher for the data channel (control.Handler): the pushed one, else
// data-ciphers-fallback, else the profile's "cipher" (servers without
// NCP). It must be one the client offered: a server cannot talk the
// client into a legacy cipher the profile did not ask for.
func (a *attempt) DataCipher(pushed string) (string, error) {
	p := a.c.cfg.Profile
	c := strings.ToUpper(pushed)
	if c == "" {
		c = strings.ToUpper(p.DataCiphersFallback)
	}
	if c == "" {
		c = strings.ToUpper(a.o.cipher)
	}
	if c == "" {
		return "", fmt.Errorf("the server pushed no cipher and the profile has none")
	}
	if !slices.Contains(a.o.dataCiphers, c) {
		return "", fmt.Errorf("the server wants data cipher %s, which this profile does not allow (offered %s)",
			c, strings.Join(a.o.dataCiphers, ":"))
	}
	return c, nil
}
