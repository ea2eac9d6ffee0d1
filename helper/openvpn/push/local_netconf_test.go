package push

import (
	"slices"
	"strings"
	"testing"
)

// TestProfileRoutingOptions shows the effect of the routing options a
// profile may carry: they reach the tunnel's network configuration
// (netconf.Config, which netcfg applies) as pushed ones would.
func TestProfileRoutingOptions(t *testing.T) {
	a := Assembler{Local: []string{
		"topology subnet", "route-gateway 10.8.0.9", "route-ipv6-gateway fd00::9",
		"route 10.20.0.0 255.255.0.0", "route-ipv6 fd20::/48", "route-metric 7",
		"redirect-gateway def1 ipv6",
	}}
	if done, err := a.Add("PUSH_REPLY,ifconfig 10.8.0.2 255.255.255.0,ifconfig-ipv6 fd00::2/64 fd00::1,peer-id 0,cipher AES-256-GCM"); !done || err != nil {
		t.Fatal(done, err)
	}
	r, err := a.Reply()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NetConfig()
	if err != nil {
		t.Fatal(err)
	}
	// topology subnet: the second ifconfig argument is a netmask.
	if !slices.Contains(c.Addresses, mustPfx("10.8.0.2/24")) {
		t.Errorf("topology subnet: addresses %v", c.Addresses)
	}
	if c.Gateway4 != mustAddr("10.8.0.9") || c.Gateway6 != mustAddr("fd00::9") {
		t.Errorf("route-gateway %v route-ipv6-gateway %v", c.Gateway4, c.Gateway6)
	}
	var v4, v6 bool
	for _, rt := range c.Routes {
		switch rt.Prefix {
		case mustPfx("10.20.0.0/16"):
			v4 = rt.Metric == 7 // route-metric is the default metric
		case mustPfx("fd20::/48"):
			v6 = true
		}
	}
	if !v4 || !v6 {
		t.Errorf("route/route-ipv6/route-metric: routes %+v", c.Routes)
	}
	if !c.RedirectIPv4 || !c.RedirectIPv6 {
		t.Errorf("redirect-gateway def1 ipv6: redirect v4 %v v6 %v", c.RedirectIPv4, c.RedirectIPv6)
	}
}

// TestDecompressFilter: real compression pushed by the server is refused
// unless the client allows decompression (allow-compression asym); then
// the reply carries the algorithm's framing (this client never
// compresses).
func TestDecompressFilter(t *testing.T) {
	cases := map[string]Compression{
		"compress lz4-v2": CompressionStubV2,
		"compress lz4":    CompressionStub,
		"compress lzo":    CompressionLZOStub,
		"comp-lzo yes":    CompressionLZOStub,
		"comp-lzo":        CompressionLZOStub,
	}
	for opt, want := range cases {
		msg := "PUSH_REPLY,ifconfig 10.8.0.2 255.255.255.0,topology subnet," + opt
		if _, err := Parse(msg, Filter{}); err == nil || !strings.Contains(err.Error(), "VORACLE") || !strings.Contains(err.Error(), "allow-compression asym") {
			t.Errorf("%s without Decompress: %v", opt, err)
		}
		r, err := Parse(msg, Filter{Decompress: true})
		if err != nil || r.Compression != want || !r.CompressionPushed {
			t.Errorf("%s with Decompress: %+v, %v; want %q", opt, r, err, want)
		}
	}
	if _, err := Parse("PUSH_REPLY,ifconfig 10.8.0.2 255.255.255.0,compress snappy", Filter{Decompress: true}); err == nil {
		t.Error("unknown algorithm accepted")
	}
}
