package push

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// NetConfig builds the layer-3 configuration of the tunnel from the
// reply. The server address (Config.Remote) is not part of a push reply;
// the engine fills it in.
func (r *Reply) NetConfig() (netconf.Config, error) {
	var c netconf.Config
	if !r.IfconfigLocal.IsValid() && !r.IfconfigIPv6.IsValid() {
		return c, errors.New("push reply has no ifconfig or ifconfig-ipv6: no tunnel address")
	}
	if r.IfconfigLocal.IsValid() {
		switch r.Topology {
		case "subnet":
			bits, err := maskBits(r.IfconfigMask)
			if err != nil {
				return c, fmt.Errorf("ifconfig: %w", err)
			}
			c.Addresses = append(c.Addresses, netip.PrefixFrom(r.IfconfigLocal, bits))
			c.Gateway4 = r.RouteGateway
		default: // net30, p2p: local address with a point-to-point peer
			c.Addresses = append(c.Addresses, netip.PrefixFrom(r.IfconfigLocal, 32))
			c.Peer4 = r.IfconfigRemote
			// Without a pushed route-gateway OpenVPN routes via the peer.
			c.Gateway4 = r.RouteGateway
			if !c.Gateway4.IsValid() {
				c.Gateway4 = r.IfconfigRemote
			}
		}
	}
	if r.IfconfigIPv6.IsValid() {
		c.Addresses = append(c.Addresses, r.IfconfigIPv6)
		c.Gateway6 = r.RouteGatewayIPv6
		if !c.Gateway6.IsValid() {
			c.Gateway6 = r.IfconfigIPv6Remote
		}
	}
	for _, rt := range append(slices.Clone(r.Routes), r.RoutesIPv6...) {
		metric := rt.Metric
		if metric == 0 {
			metric = r.RouteMetric
		}
		c.Routes = append(c.Routes, netconf.Route{
			Prefix:  rt.Prefix,
			Gateway: rt.Gateway,
			Metric:  metric,
			Exclude: rt.NetGateway,
		})
	}
	// With or without def1 the default route is redirected as two half
	// routes (as OpenVPN 3 does), so the original default route is never
	// deleted and nothing needs restoring after a crash.
	has := func(f string) bool { return slices.Contains(r.RedirectFlags, f) }
	if r.RedirectGateway {
		c.RedirectIPv4 = !has("!ipv4")
		c.RedirectIPv6 = has("ipv6")
	}
	if r.RedirectGateway || r.RedirectPrivate {
		c.RedirectLocal = has("local")
		c.BlockLocal = has("block-local")
		c.BypassDHCP = has("bypass-dhcp")
		c.BypassDNS = has("bypass-dns")
	}
	c.BlockIPv6 = r.BlockIPv6
	c.MTU = r.TunMTU
	c.DNS = r.dnsSettings()
	if err := c.Validate(); err != nil {
		return netconf.Config{}, fmt.Errorf("pushed network settings: %w", err)
	}
	return c, nil
}

// dnsSettings prefers the 2.6 "dns" option over "dhcp-option", as
// OpenVPN does when both are pushed. The server entry with the lowest
// priority number that does not need DNS over HTTPS (which no Linux
// resolver backend speaks) is the primary one: its resolve-domains,
// DNSSEC and transport apply; the other entries of the same transport
// follow as fallback servers (their resolve-domains do not narrow what
// the primary one resolves).
func (r *Reply) dnsSettings() netconf.DNS {
	var d netconf.DNS
	if len(r.DNSServers) > 0 {
		byPrio := slices.Clone(r.DNSServers)
		slices.SortStableFunc(byPrio, func(a, b DNSServer) int { return cmp.Compare(a.Priority, b.Priority) })
		var primary *DNSServer
		for i, s := range byPrio {
			if s.Transport == "DoH" || len(s.Addresses) == 0 {
				continue
			}
			if primary == nil {
				primary = &byPrio[i]
				d.DNSSEC = s.DNSSEC
				switch s.Transport {
				case "DoT":
					d.Transport, d.SNI = "dot", s.SNI
				case "plain":
					d.Transport = "plain"
				}
			} else if s.Transport != primary.Transport && !(isPlain(s.Transport) && isPlain(primary.Transport)) {
				continue
			}
			for _, ap := range s.Addresses {
				if !slices.Contains(d.Servers, ap) {
					d.Servers = append(d.Servers, ap)
				}
			}
			if primary == &byPrio[i] {
				d.Routing = slices.Clone(s.ResolveDomains)
			}
		}
	} else {
		for _, a := range r.DHCPDNS {
			if ap := netip.AddrPortFrom(a, 0); !slices.Contains(d.Servers, ap) {
				d.Servers = append(d.Servers, ap)
			}
		}
	}
	if len(r.DNSSearchDomains) > 0 {
		d.Search = slices.Clone(r.DNSSearchDomains)
	} else {
		for _, dom := range append(slices.Clone(r.DHCPDomain), r.DHCPSearch...) {
			if !slices.Contains(d.Search, dom) {
				d.Search = append(d.Search, dom)
			}
		}
	}
	return d
}

func isPlain(transport string) bool { return transport == "" || transport == "plain" }
