package backend

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netcfg"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// dcoBlocker says why the profile needs something the kernel's data channel
// cannot do ("" when nothing): compression framing, a non-AEAD data cipher,
// fragment, a proxy, a tap device.
func dcoBlocker(p *profile.Profile) string {
	switch {
	case p.Compress != "" || p.CompLZO != "":
		return "the profile uses compression framing, which DCO cannot carry"
	case p.HTTPProxy != nil:
		return "the connection goes through an HTTP proxy"
	case strings.HasPrefix(p.Dev, "tap"):
		return "tap devices cannot be offloaded"
	}
	ciphers := p.DataCiphers
	if len(ciphers) == 0 && p.Cipher != "" {
		ciphers = []string{p.Cipher}
	}
	if len(ciphers) > 0 && !slices.ContainsFunc(ciphers, func(c string) bool { _, ok := dco.CipherFor(strings.ToUpper(c)); return ok }) {
		return "no AEAD data cipher (AES-GCM, ChaCha20-Poly1305) among " + strings.Join(ciphers, ":")
	}
	return ""
}

// dcoFallback says why a session that asked for DCO runs on TUN. available
// and unavailableWhy come from netcfg's DcoAvailable.
func dcoFallback(p *profile.Profile, available bool, unavailableWhy string) string {
	if !available {
		if unavailableWhy == "" {
			unavailableWhy = "the kernel has no ovpn module"
		}
		return unavailableWhy
	}
	if why := dcoBlocker(p); why != "" {
		return why
	}
	// The kernel could take this session, but the engine does not hand
	// its socket and keys over yet (netcfg/dco has the kernel side).
	return "this client's engine does not hand the data channel to the kernel yet"
}

// chooseDataPath runs before a connection: a session that asked for DCO
// (the dco property) learns from netcfg whether the kernel offers it, the
// backend logs the path it takes and why, and the dco property then tells
// front-ends the truth.
func (b *Backend) chooseDataPath() {
	b.mu.Lock()
	want, prof := b.dco, b.prof
	b.mu.Unlock()
	if !want || prof == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	available, err := netcfg.NewClient(b.srv.Conn()).DcoAvailable(ctx)
	why := ""
	if err != nil {
		available, why = false, "netcfg could not say whether the kernel offers DCO: "+err.Error()
	} else if !available {
		why = "the kernel has no ovpn module (generic netlink family \"ovpn\")"
	}
	b.log.Warn("data channel offload requested, using TUN instead", "reason", dcoFallback(prof, available, why))
	b.mu.Lock()
	b.dco = false
	b.mu.Unlock()
}
