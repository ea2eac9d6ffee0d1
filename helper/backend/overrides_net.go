package backend

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// overrideRule says what becomes of one override key of dbus-api §2.2.1
// when a profile that sets it starts a session. Every key is either
// applied (by the backend, the session manager or netcfg) or refused with
// the reason: none is stored and silently ignored. Whoever makes a refused
// key take effect flips its rule in the same commit as the test.
type overrideRule struct {
	// refuse, when set, says why the value cannot be honoured ("" = fine).
	refuse func(v any) string
}

func applied() overrideRule { return overrideRule{} }

func refusedAlways(why string) overrideRule {
	return overrideRule{refuse: func(any) string { return why }}
}

var overrideRules = map[string]overrideRule{
	// Applied here (applyNetOverrides, applyProfileOverrides).
	"server-override": applied(), "port-override": applied(), "proto-override": applied(),
	"ipv6": applied(), "log-level": applied(),
	"dns-fallback-google": applied(), "dns-setup-disabled": applied(), "dns-scope": applied(),
	// Name lookups of the server happen before connecting and are waited
	// for: synchronous already.
	"dns-sync-lookup": applied(),
	// Applied by applyOverrides (allow-compression) and by the session
	// manager (automatic-restart).
	"allow-compression": applied(), "automatic-restart": applied(),
	"persist-tun": {refuse: func(v any) string {
		if on, _ := v.(bool); on {
			return "the tun device is set up again on every reconnect (persist-tun is not supported)"
		}
		return ""
	}},
	"auth-fail-retry":          refusedAlways("not applied by this client yet"),
	"enable-legacy-algorithms": refusedAlways("not applied by this client yet; use the profile's data-ciphers"),
	"tls-version-min":          refusedAlways("not applied by this client yet; use the profile's tls-version-min"),
	"tls-cert-profile":         refusedAlways("not applied by this client yet; use the profile's tls-cert-profile"),
	"proxy-host":               refusedAlways("not applied by this client yet; use the profile's http-proxy"),
	"proxy-port":               refusedAlways("not applied by this client yet; use the profile's http-proxy"),
	"proxy-username":           refusedAlways("not applied by this client yet; use the profile's http-proxy"),
	"proxy-password":           refusedAlways("not applied by this client yet; use the profile's http-proxy"),
	"proxy-auth-cleartext":     refusedAlways("not applied by this client yet; use the profile's http-proxy"),
	"enterprise-profile":       refusedAlways("device posture checks are not supported"),
}

// refuseUnapplied returns an error naming the first override (in key
// order) that this client does not honour, with the reason.
func refuseUnapplied(ov map[string]dbus.Variant) error {
	for _, k := range slices.Sorted(maps.Keys(ov)) {
		rule, ok := overrideRules[k]
		if !ok {
			return fmt.Errorf("override %s: unknown override", k)
		}
		if rule.refuse != nil {
			if why := rule.refuse(ov[k].Value()); why != "" {
				return fmt.Errorf("override %s: %s", k, why)
			}
		}
	}
	return nil
}

// netOverrides are the overrides that change the tunnel's network
// configuration before it goes to netcfg.
type netOverrides struct {
	noIPv6         bool   // ipv6 no
	noDNS          bool   // dns-setup-disabled
	fallbackGoogle bool   // dns-fallback-google
	dnsScope       string // dns-scope: "", "global" or "tunnel"
}

// applyProfileOverrides applies server-override, port-override,
// proto-override and log-level to the profile and returns the network
// overrides for later; a value it cannot use is an error naming the key.
func applyProfileOverrides(p *profile.Profile, ov map[string]dbus.Variant, logLevel *uint32) (netOverrides, error) {
	var n netOverrides
	str := func(k string) (string, bool, error) {
		v, ok := ov[k]
		if !ok {
			return "", false, nil
		}
		s, ok := v.Value().(string)
		if !ok {
			return "", false, fmt.Errorf("override %s: value of type %s, want a string", k, v.Signature())
		}
		return s, true, nil
	}
	boolean := func(k string) (bool, error) {
		v, ok := ov[k]
		if !ok {
			return false, nil
		}
		b, ok := v.Value().(bool)
		if !ok {
			return false, fmt.Errorf("override %s: value of type %s, want a boolean", k, v.Signature())
		}
		return b, nil
	}
	if s, ok, err := str("server-override"); err != nil {
		return n, err
	} else if ok {
		if s == "" || len(s) > 253 {
			return n, fmt.Errorf("override server-override: invalid host %q", s)
		}
		for i := range p.Remotes {
			p.Remotes[i].Host = s
		}
	}
	if s, ok, err := str("port-override"); err != nil {
		return n, err
	} else if ok {
		if port, err := strconv.Atoi(s); err != nil || port < 1 || port > 65535 {
			return n, fmt.Errorf("override port-override: invalid port %q", s)
		}
		for i := range p.Remotes {
			p.Remotes[i].Port = s
		}
	}
	if s, ok, err := str("proto-override"); err != nil {
		return n, err
	} else if ok {
		if s != "udp" && s != "tcp" {
			return n, fmt.Errorf("override proto-override: %q, want udp or tcp", s)
		}
		for i := range p.Remotes {
			p.Remotes[i].Proto = s
		}
	}
	if s, ok, err := str("log-level"); err != nil {
		return n, err
	} else if ok {
		lvl, err := strconv.Atoi(s)
		if err != nil || lvl < 1 || lvl > int(api.MaxLogLevel) {
			return n, fmt.Errorf("override log-level: %q, want 1..%d", s, api.MaxLogLevel)
		}
		*logLevel = uint32(lvl)
	}
	if s, ok, err := str("ipv6"); err != nil {
		return n, err
	} else if ok {
		switch s {
		case "no":
			n.noIPv6 = true
		case "yes", "default":
		default:
			return n, fmt.Errorf("override ipv6: %q, want yes, no or default", s)
		}
	}
	if s, ok, err := str("dns-scope"); err != nil {
		return n, err
	} else if ok {
		if s != "global" && s != "tunnel" {
			return n, fmt.Errorf("override dns-scope: %q, want global or tunnel", s)
		}
		n.dnsScope = s
	}
	var err error
	if n.noDNS, err = boolean("dns-setup-disabled"); err != nil {
		return n, err
	}
	if n.fallbackGoogle, err = boolean("dns-fallback-google"); err != nil {
		return n, err
	}
	if _, err = boolean("dns-sync-lookup"); err != nil {
		return n, err
	}
	return n, nil
}

// googleDNS are dns-fallback-google's servers.
var googleDNS = []netip.AddrPort{netip.MustParseAddrPort("8.8.8.8:0"), netip.MustParseAddrPort("8.8.4.4:0")}

// apply changes the pushed configuration as the overrides say.
func (n netOverrides) apply(c netconf.Config) netconf.Config {
	if n.noIPv6 {
		c.Addresses = slices.DeleteFunc(slices.Clone(c.Addresses), func(p netip.Prefix) bool { return p.Addr().Unmap().Is6() })
		c.Routes = slices.DeleteFunc(slices.Clone(c.Routes), func(r netconf.Route) bool { return r.Prefix.Addr().Unmap().Is6() })
		c.DNS.Servers = slices.DeleteFunc(slices.Clone(c.DNS.Servers), func(a netip.AddrPort) bool { return a.Addr().Unmap().Is6() })
		c.RedirectIPv6, c.Gateway6 = false, netip.Addr{}
	}
	if n.fallbackGoogle && len(c.DNS.Servers) == 0 {
		c.DNS.Servers = slices.Clone(googleDNS)
	}
	if n.noDNS {
		c.DNS = netconf.DNS{}
	}
	if n.dnsScope != "" {
		c.DNSScope = n.dnsScope
	}
	return c
}
