package netcfg

import (
	"bufio"
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// Where bypass-dns and bypass-dhcp look for the system's servers. Tests
// point them elsewhere.
var (
	resolvConfPath = "/etc/resolv.conf"
	leaseGlobs     = []string{
		"/run/systemd/netif/leases/*",     // systemd-networkd: SERVER_ADDRESS=
		"/var/lib/dhcp/*.leases",          // ISC dhclient: option dhcp-server-identifier
		"/var/lib/NetworkManager/*.lease", // NetworkManager's dhclient
	}
)

// Route flags a device accepts in its route_flags property: the
// redirect-gateway flags and block-ipv6, which the openvpn3 device API has
// no property for.
var routeFlags = []string{"local", "block-local", "bypass-dhcp", "bypass-dns", "block-ipv6"}

// addBypassRoutes turns bypass-dns and bypass-dhcp into excluded host
// routes to the system's DNS servers and DHCP server. OpenVPN 2 does this
// on Windows only; on Linux the servers are read from resolv.conf and the
// DHCP clients' lease files. Addresses on this host (a stub resolver) need
// no bypass.
func (s *Service) addBypassRoutes(cfg *netconf.Config, log *slog.Logger) {
	var addrs []netip.Addr
	if cfg.BypassDNS {
		dns := systemDNSServers(resolvConfPath)
		log.Info("bypass-dns: DNS servers kept outside the tunnel", "servers", dns)
		addrs = append(addrs, dns...)
	}
	if cfg.BypassDHCP {
		dhcp := dhcpServers(leaseGlobs)
		if len(dhcp) == 0 {
			log.Info("bypass-dhcp: no DHCP lease found; nothing to bypass")
		} else {
			log.Info("bypass-dhcp: DHCP servers kept outside the tunnel", "servers", dhcp)
		}
		addrs = append(addrs, dhcp...)
	}
	for _, a := range addrs {
		p := netip.PrefixFrom(a, a.BitLen())
		if !slices.ContainsFunc(cfg.Routes, func(r netconf.Route) bool { return r.Exclude && r.Prefix == p }) {
			cfg.Routes = append(cfg.Routes, netconf.Route{Prefix: p, Exclude: true})
		}
	}
}

// systemDNSServers reads the nameserver lines of a resolv.conf, leaving out
// loopback addresses.
func systemDNSServers(path string) []netip.Addr {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.Zone() != "" || a.IsLoopback() || a.IsUnspecified() {
			continue
		}
		a = a.Unmap()
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// dhcpServers reads the DHCP server addresses from the lease files the
// globs match (systemd-networkd and ISC dhclient formats).
func dhcpServers(globs []string) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		s = strings.Trim(strings.TrimSpace(s), `;"`)
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() && !a.IsLoopback() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, g := range globs {
		files, _ := filepath.Glob(g)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil || len(data) > 1<<20 {
				continue
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if v, ok := strings.CutPrefix(line, "SERVER_ADDRESS="); ok {
					add(v)
				} else if v, ok := strings.CutPrefix(line, "option dhcp-server-identifier "); ok {
					add(v)
				}
			}
		}
	}
	return out
}
