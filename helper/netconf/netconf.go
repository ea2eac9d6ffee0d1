// Package netconf holds the network settings of one tunnel: what the server
// pushed (addresses, routes, DNS, MTU) after the client's own filters. The
// engine produces it, the backend carries it to netcfg over D-Bus, and netcfg
// applies it to the TUN device. It has no behaviour beyond validation so that
// all three can import it without importing each other.
package netconf

import (
	"fmt"
	"net/netip"
	"strings"
)

// Route is one network reached through the tunnel (or, with Exclude, kept
// out of it).
type Route struct {
	Prefix  netip.Prefix
	Gateway netip.Addr // zero: on-link through the TUN device
	Metric  int        // <= 0: kernel default
	Exclude bool
}

// Config is the complete layer-3 configuration of a TUN device.
type Config struct {
	// Addresses are the local tunnel addresses with their on-link prefix
	// length, e.g. 198.19.0.2/24 for topology subnet.
	Addresses []netip.Prefix
	// Peer is the remote end for point-to-point addressing (topology net30
	// and p2p); zero for topology subnet.
	Peer4 netip.Addr
	// Gateway4 and Gateway6 are the pushed route-gateway values used for
	// routes that name no gateway.
	Gateway4, Gateway6 netip.Addr
	Routes             []Route
	// RedirectIPv4/6 send the default route through the tunnel (def1 style:
	// two half routes, so the original default route stays).
	RedirectIPv4, RedirectIPv6 bool
	// RedirectLocal (redirect-gateway local): the server is on a local
	// network, so it gets no host route outside the tunnel.
	RedirectLocal bool
	// BlockLocal (redirect-gateway block-local) routes the local IPv4
	// networks into the tunnel too, except the local gateway itself.
	BlockLocal bool
	// BypassDHCP and BypassDNS (redirect-gateway bypass-dhcp/bypass-dns)
	// keep the system's DHCP server and DNS servers outside the tunnel.
	BypassDHCP, BypassDNS bool
	// BlockIPv6 (block-ipv6) makes IPv6 unreachable outside the tunnel
	// while IPv4 is redirected, so IPv6 traffic cannot leak past it.
	BlockIPv6 bool
	MTU       int
	DNS       DNS
	// DNSScope is the dns-scope override: "global", "tunnel", or ""
	// (netcfg's default).
	DNSScope string
	// Remote is the VPN server's transport address; with a redirected
	// default route it keeps a host route outside the tunnel.
	Remote netip.Addr
	// VnetHdr asks for a TUN device with IFF_VNET_HDR: every packet in
	// both directions carries a virtio_net_hdr, so the device can hand out
	// and take TSO/USO super-packets (helper/openvpn/offload).
	VnetHdr bool
}

// Validate reports the first setting that cannot be applied as given.
func (c *Config) Validate() error {
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		return fmt.Errorf("mtu %d out of range 576..65535", c.MTU)
	}
	for _, a := range c.Addresses {
		if !a.IsValid() {
			return fmt.Errorf("invalid tunnel address %v", a)
		}
	}
	for _, r := range c.Routes {
		if !r.Prefix.IsValid() {
			return fmt.Errorf("invalid route %v", r.Prefix)
		}
		if r.Gateway.IsValid() && r.Gateway.Is4() != r.Prefix.Addr().Is4() {
			return fmt.Errorf("route %v: gateway %v is of the other address family", r.Prefix, r.Gateway)
		}
	}
	return c.DNS.Validate()
}

// DNS is the resolver configuration of a tunnel, from the pushed
// "dhcp-option DNS/DOMAIN…" or the 2.6 "dns" option.
type DNS struct {
	// Servers in order of preference; port 0 means 53.
	Servers []netip.AddrPort
	// Search are search domains, appended to names without a dot.
	Search []string
	// Routing are the domains resolved through the tunnel's servers
	// ("dns server N resolve-domains", split DNS). Empty means every name
	// not routed elsewhere: the tunnel takes all DNS.
	Routing []string
	// DNSSEC is "" (not pushed), "yes", "no" or "optional".
	DNSSEC string
	// Transport is "" (not pushed), "plain" or "dot" (DNS over TLS).
	Transport string
	// SNI is the TLS server name for DNS over TLS.
	SNI string
}

// IsZero reports whether nothing about DNS was pushed.
func (d *DNS) IsZero() bool {
	return len(d.Servers) == 0 && len(d.Search) == 0 && len(d.Routing) == 0 &&
		d.DNSSEC == "" && d.Transport == "" && d.SNI == ""
}

// Validate reports the first DNS setting that cannot be applied.
func (d *DNS) Validate() error {
	for _, s := range d.Servers {
		if !s.Addr().IsValid() || s.Addr().Zone() != "" {
			return fmt.Errorf("invalid DNS server %v", s)
		}
	}
	for _, l := range [][]string{d.Search, d.Routing} {
		for _, n := range l {
			if err := CheckDomain(n); err != nil {
				return err
			}
		}
	}
	switch d.DNSSEC {
	case "", "yes", "no", "optional":
	default:
		return fmt.Errorf("invalid DNSSEC mode %q", d.DNSSEC)
	}
	switch d.Transport {
	case "", "plain", "dot":
	default:
		return fmt.Errorf("invalid DNS transport %q", d.Transport)
	}
	if d.SNI != "" {
		if err := CheckDomain(d.SNI); err != nil {
			return fmt.Errorf("DNS server name: %w", err)
		}
	}
	return nil
}

// CheckDomain accepts a DNS name as OpenVPN does: letters, digits, '-',
// '_' and '.', at most 253 bytes. "." alone (the root) is refused: routing
// everything is expressed by an empty Routing list.
func CheckDomain(d string) error {
	if d == "" || len(d) > 253 || strings.Trim(d, ".") == "" {
		return fmt.Errorf("bad domain %q", d)
	}
	for _, c := range []byte(d) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("bad domain %q", d)
		}
	}
	return nil
}
