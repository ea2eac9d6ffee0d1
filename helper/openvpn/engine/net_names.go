package engine

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
)

// lookupName is the name to resolve for a remote host: with
// remote-random-hostname, a fresh random 12-hex-digit label in front of a
// host name (not an address) on every lookup, as OpenVPN does, so no DNS
// cache between client and server answers it.
func (c *Client) lookupName(host string) string {
	if !c.cfg.Profile.RemoteRandomHostname {
		return host
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	var b [6]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:]) + "." + host
}
