package backend

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// Every override key of dbus-api §2.2.1 (the configuration manager's list)
// has a rule here: applied, or refused with a reason.
func TestEveryOverrideHasARule(t *testing.T) {
	keys := []string{"server-override", "port-override", "proto-override", "ipv6", "persist-tun", "log-level",
		"dns-fallback-google", "dns-setup-disabled", "dns-scope", "dns-sync-lookup", "auth-fail-retry",
		"allow-compression", "enable-legacy-algorithms", "tls-version-min", "tls-cert-profile", "proxy-host",
		"proxy-port", "proxy-username", "proxy-password", "proxy-auth-cleartext", "enterprise-profile", "automatic-restart"}
	for _, k := range keys {
		if _, ok := overrideRules[k]; !ok {
			t.Errorf("override %s has no rule", k)
		}
	}
	if len(overrideRules) != len(keys) {
		t.Errorf("%d rules for %d keys", len(overrideRules), len(keys))
	}
}

func TestRefuseUnapplied(t *testing.T) {
	for _, tc := range []struct {
		ov   map[string]dbus.Variant
		want string // "" = accepted
	}{
		{map[string]dbus.Variant{"ipv6": dbus.MakeVariant("no"), "dns-scope": dbus.MakeVariant("tunnel"), "persist-tun": dbus.MakeVariant(false)}, ""},
		{map[string]dbus.Variant{"persist-tun": dbus.MakeVariant(true)}, "override persist-tun: the tun device is set up again"},
		{map[string]dbus.Variant{"enterprise-profile": dbus.MakeVariant("x"), "ipv6": dbus.MakeVariant("no")}, "override enterprise-profile: device posture"},
		{map[string]dbus.Variant{"proxy-host": dbus.MakeVariant("p")}, "override proxy-host: not applied"},
		{map[string]dbus.Variant{"made-up": dbus.MakeVariant("p")}, "override made-up: unknown"},
	} {
		err := refuseUnapplied(tc.ov)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.ov, err, tc.want)
		}
	}
}

func TestProfileAndNetOverrides(t *testing.T) {
	p, err := profile.Parse("client\ndev tun\nremote 192.0.2.1 1194 udp\nremote 192.0.2.2 443 tcp\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n")
	if err != nil {
		t.Fatal(err)
	}
	var lvl uint32
	n, err := applyProfileOverrides(p, map[string]dbus.Variant{
		"server-override": dbus.MakeVariant("vpn.example"), "port-override": dbus.MakeVariant("1195"),
		"proto-override": dbus.MakeVariant("tcp"), "log-level": dbus.MakeVariant("5"),
		"ipv6": dbus.MakeVariant("no"), "dns-scope": dbus.MakeVariant("tunnel"), "dns-fallback-google": dbus.MakeVariant(true),
	}, &lvl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Remotes {
		if r.Host != "vpn.example" || r.Port != "1195" || r.Proto != "tcp" {
			t.Errorf("remote %+v not overridden", r)
		}
	}
	if lvl != 5 {
		t.Errorf("log level %d, want 5", lvl)
	}
	cfg := n.apply(netconf.Config{
		Addresses:    []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24"), netip.MustParsePrefix("fd00::2/64")},
		Routes:       []netconf.Route{{Prefix: netip.MustParsePrefix("10.9.0.0/16")}, {Prefix: netip.MustParsePrefix("fd01::/48")}},
		RedirectIPv6: true,
	})
	if len(cfg.Addresses) != 1 || len(cfg.Routes) != 1 || cfg.RedirectIPv6 {
		t.Errorf("ipv6 no left IPv6 in %+v", cfg)
	}
	if cfg.DNSScope != "tunnel" || len(cfg.DNS.Servers) != 2 || cfg.DNS.Servers[0].Addr().String() != "8.8.8.8" {
		t.Errorf("dns overrides not applied: %+v", cfg)
	}
	pushed := netconf.Config{DNS: netconf.DNS{Servers: []netip.AddrPort{netip.MustParseAddrPort("10.8.0.1:53")}, Search: []string{"x"}}}
	if got := n.apply(pushed); len(got.DNS.Servers) != 1 {
		t.Errorf("dns-fallback-google replaced pushed servers: %+v", got.DNS)
	}
	if got := (netOverrides{noDNS: true}).apply(pushed); !got.DNS.IsZero() {
		t.Errorf("dns-setup-disabled kept %+v", got.DNS)
	}
	for k, v := range map[string]any{"port-override": "0", "proto-override": "sctp", "log-level": "9", "ipv6": "maybe",
		"dns-scope": "planet", "server-override": "", "dns-setup-disabled": "yes"} {
		if _, err := applyProfileOverrides(p, map[string]dbus.Variant{k: dbus.MakeVariant(v)}, &lvl); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%v: %v", k, v, err)
		}
	}
}
