package netcfg

import (
	"net/netip"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// The device turns AddIPAddress gateways back into what netconf says:
// net30/p2p gateways are the peer, subnet gateways the route-gateway.
func TestQueuedConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs []queuedAddr
		want  netconf.Config
	}{
		{"subnet", []queuedAddr{{mp("10.8.0.2/24"), ma("10.8.0.1")}, {mp("fd00::2/64"), ma("fd00::1")}},
			netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24"), mp("fd00::2/64")}, Gateway4: ma("10.8.0.1"), Gateway6: ma("fd00::1")}},
		{"net30", []queuedAddr{{mp("10.8.0.6/30"), ma("10.8.0.5")}},
			netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.6/30")}, Gateway4: ma("10.8.0.5"), Peer4: ma("10.8.0.5")}},
		{"p2p", []queuedAddr{{mp("10.8.0.6/24"), ma("10.9.0.1")}},
			netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.6/24")}, Gateway4: ma("10.9.0.1"), Peer4: ma("10.9.0.1")}},
		{"no gateway", []queuedAddr{{mp("10.8.0.2/24"), netip.Addr{}}},
			netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &device{addrs: tc.addrs, mtu: 1500}
			got := d.config()
			tc.want.MTU = 1500
			if got.Gateway4 != tc.want.Gateway4 || got.Gateway6 != tc.want.Gateway6 || got.Peer4 != tc.want.Peer4 ||
				len(got.Addresses) != len(tc.want.Addresses) || got.MTU != tc.want.MTU {
				t.Errorf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidLabel(t *testing.T) {
	for s, want := range map[string]bool{
		"":                        false,
		"abc_123":                 true,
		"3f0c2e1at1b2ct4d5e":      true,
		"a/b":                     false,
		"a-b":                     false,
		"a b":                     false,
		string(make([]byte, 200)): false,
	} {
		if got := validLabel(s); got != want {
			t.Errorf("validLabel(%q) = %v, want %v", s, got, want)
		}
	}
}

// A route's own gateway stays when the tunnel reaches it and is dropped
// (the route kept, on-link) when it does not.
func TestRouteGatewayReachability(t *testing.T) {
	d := &device{mtu: 1500, addrs: []queuedAddr{{mp("10.8.0.2/24"), ma("10.8.0.1")}, {mp("fd00::2/64"), ma("fd00::1")}},
		networks: []netconf.Route{
			{Prefix: mp("192.168.1.0/24"), Gateway: ma("10.8.0.254")},
			{Prefix: mp("192.168.2.0/24"), Gateway: ma("192.0.2.1")},
			{Prefix: mp("fd01::/48"), Gateway: ma("fd00::9")},
			{Prefix: mp("192.168.3.0/24"), Gateway: ma("10.8.0.2")}, // our own address
		}}
	got := d.config().Routes
	want := []netip.Addr{ma("10.8.0.254"), {}, ma("fd00::9"), {}}
	for i, r := range got {
		if r.Gateway != want[i] {
			t.Errorf("route %v: gateway %v, want %v", r.Prefix, r.Gateway, want[i])
		}
	}
}
