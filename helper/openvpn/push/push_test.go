package push

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// typical26 is the reply of a default OpenVPN 2.6 server (spec §1.0).
const typical26 = "PUSH_REPLY,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120," +
	"ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM," +
	"protocol-flags cc-exit tls-ekm dyn-tls-crypt,tun-mtu 1500"

// testbed is what the test-bed server (testbed/server.sh) pushes.
const testbed = "PUSH_REPLY,route 198.19.1.0 255.255.255.0,dhcp-option DNS 198.19.0.1," +
	"dhcp-option DOMAIN testbed.example,dns server 1 address 198.19.0.1," +
	"dns search-domains testbed.example,route-gateway 198.19.0.1,topology subnet,ping 10," +
	"ping-restart 60,ifconfig 198.19.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM," +
	"protocol-flags cc-exit tls-ekm dyn-tls-crypt\x00"

func mustAddr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func mustPfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ap(s string) netip.AddrPort    { return netip.AddrPortFrom(mustAddr(s), 0) }

func TestTypical26(t *testing.T) {
	r, err := Parse(typical26, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Topology != "subnet" || r.Ping != 10 || r.PingRestart != 120 || r.PeerID != 0 ||
		r.Cipher != "AES-256-GCM" || !r.CCExit || !r.TLSEKM || !r.DynTLSCrypt || r.TunMTU != 1500 {
		t.Fatalf("reply %+v", r)
	}
	if r.IfconfigLocal != mustAddr("10.8.0.2") || r.IfconfigMask != mustAddr("255.255.255.0") || r.IfconfigRemote.IsValid() {
		t.Fatalf("ifconfig %v %v %v", r.IfconfigLocal, r.IfconfigMask, r.IfconfigRemote)
	}
	if len(r.Options) != 9 || len(r.Unhandled) != 0 {
		t.Fatalf("options %q unhandled %q", r.Options, r.Unhandled)
	}
	c, err := r.NetConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := netconf.Config{
		Addresses: []netip.Prefix{mustPfx("10.8.0.2/24")},
		Gateway4:  mustAddr("10.8.0.1"),
		MTU:       1500,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("netconf\n got %+v\nwant %+v", c, want)
	}
}

func TestTestbed(t *testing.T) {
	r, err := Parse(testbed, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.PingRestart != 60 || r.RouteGateway != mustAddr("198.19.0.1") {
		t.Fatalf("reply %+v", r)
	}
	if !reflect.DeepEqual(r.DNSServers, []DNSServer{{Priority: 1, Addresses: []netip.AddrPort{ap("198.19.0.1")}}}) {
		t.Fatalf("dns servers %+v", r.DNSServers)
	}
	c, err := r.NetConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := netconf.Config{
		Addresses: []netip.Prefix{mustPfx("198.19.0.2/24")},
		Gateway4:  mustAddr("198.19.0.1"),
		Routes:    []netconf.Route{{Prefix: mustPfx("198.19.1.0/24")}},
		DNS:       netconf.DNS{Servers: []netip.AddrPort{ap("198.19.0.1")}, Search: []string{"testbed.example"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("netconf\n got %+v\nwant %+v", c, want)
	}

	// Variant i adds IPv6.
	r, err = Parse(strings.TrimRight(testbed, "\x00")+",ifconfig-ipv6 2001:2:0:8::1000/64 2001:2:0:8::1,"+
		"route-ipv6 2001:2:0:9::/64,dhcp-option DNS6 2001:2:0:8::1,dns server 2 address 2001:2:0:8::1", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	c, err = r.NetConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Addresses, []netip.Prefix{mustPfx("198.19.0.2/24"), mustPfx("2001:2:0:8::1000/64")}) ||
		c.Gateway6 != mustAddr("2001:2:0:8::1") ||
		!reflect.DeepEqual(c.DNS.Servers, []netip.AddrPort{ap("198.19.0.1"), ap("2001:2:0:8::1")}) ||
		len(c.Routes) != 2 || c.Routes[1].Prefix != mustPfx("2001:2:0:9::/64") {
		t.Fatalf("netconf %+v", c)
	}
}

func TestNet30AndRoutes(t *testing.T) {
	r, err := Parse("PUSH_REPLY,route 10.8.0.1,topology net30,ping 10,ping-restart 120,"+
		"ifconfig 10.8.0.6 10.8.0.5,route 192.168.10.0 255.255.255.0 vpn_gateway,"+
		"route 172.16.0.0 255.240.0.0 10.8.0.5 50,route 203.0.113.7 255.255.255.255 net_gateway,"+
		"route-metric 7,redirect-gateway def1 bypass-dhcp,comp-lzo no", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.IfconfigRemote != mustAddr("10.8.0.5") || r.Compression != CompressionLZOStub || !r.CompressionPushed || r.PeerID != -1 {
		t.Fatalf("reply %+v", r)
	}
	c, err := r.NetConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := netconf.Config{
		Addresses: []netip.Prefix{mustPfx("10.8.0.6/32")},
		Peer4:     mustAddr("10.8.0.5"),
		Gateway4:  mustAddr("10.8.0.5"),
		Routes: []netconf.Route{
			{Prefix: mustPfx("10.8.0.1/32"), Metric: 7},
			{Prefix: mustPfx("192.168.10.0/24"), Metric: 7},
			{Prefix: mustPfx("172.16.0.0/12"), Gateway: mustAddr("10.8.0.5"), Metric: 50},
			{Prefix: mustPfx("203.0.113.7/32"), Metric: 7, Exclude: true},
		},
		RedirectIPv4: true,
		BypassDHCP:   true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("netconf\n got %+v\nwant %+v", c, want)
	}
}

func TestDefaultTopologyIsNet30(t *testing.T) {
	r, err := Parse("PUSH_REPLY,ifconfig 10.8.0.6 10.8.0.5", Filter{})
	if err != nil || r.Topology != "net30" || r.IfconfigRemote != mustAddr("10.8.0.5") {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestContinuation(t *testing.T) {
	var a Assembler
	parts := []string{
		"PUSH_REPLY,route 10.1.0.0 255.255.0.0,route 10.2.0.0 255.255.0.0,push-continuation 2\x00",
		"PUSH_REPLY,route 10.3.0.0 255.255.0.0,push-continuation 2",
		"PUSH_REPLY,topology subnet,ifconfig 10.8.0.2 255.255.255.0,push-continuation 1",
	}
	for i, p := range parts {
		done, err := a.Add(p)
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == len(parts)-1) {
			t.Fatalf("part %d: done=%v", i, done)
		}
		if i == 0 {
			if _, err := a.Reply(); err == nil {
				t.Fatal("Reply before last part succeeded")
			}
		}
	}
	r, err := a.Reply()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Routes) != 3 || r.Topology != "subnet" || len(r.Options) != 5 {
		t.Fatalf("routes %v options %q", r.Routes, r.Options)
	}
	if _, err := a.Add("PUSH_REPLY,ping 1"); err == nil {
		t.Fatal("part after the last accepted")
	}
	a.Reset()
	if done, err := a.Add("PUSH_REPLY,ping 5"); !done || err != nil {
		t.Fatalf("after reset: %v %v", done, err)
	}
	if _, err := Parse("PUSH_REPLY,ping 1,push-continuation 2", Filter{}); err == nil {
		t.Fatal("Parse accepted a partial reply")
	}
	var b Assembler
	for i := 0; i < MaxParts; i++ {
		if _, err := b.Add("PUSH_REPLY,push-continuation 2"); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if _, err := b.Add("PUSH_REPLY,push-continuation 2"); err == nil {
		t.Fatal("unbounded continuation accepted")
	}
}

func TestFilters(t *testing.T) {
	f := Filter{RouteNoPull: true}
	r, err := Parse(testbed+",redirect-gateway def1", f)
	if err == nil {
		t.Fatal("expected error: NUL inside message")
	}
	r, err = Parse(strings.TrimRight(testbed, "\x00")+",redirect-gateway def1", f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Routes) != 0 || len(r.DHCPDNS) != 0 || len(r.DNSServers) != 0 || r.RedirectGateway || len(r.Warnings) == 0 {
		t.Fatalf("route-nopull kept %+v", r)
	}
	if r.IfconfigLocal != mustAddr("198.19.0.2") || r.RouteGateway != mustAddr("198.19.0.1") || r.Ping != 10 {
		t.Fatalf("route-nopull dropped too much: %+v", r)
	}

	f = Filter{PullFilters: []PullFilter{
		{Action: "accept", Text: "route 198.19.1."},
		{Action: "ignore", Text: "route "},
		{Action: "ignore", Text: "dhcp-option DNS"},
	}}
	r, err = Parse("PUSH_REPLY,route 198.19.1.0 255.255.255.0,route 10.0.0.0 255.0.0.0,dhcp-option DNS 1.1.1.1,dhcp-option DOMAIN x.example,route-gateway 1.2.3.4", f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Routes) != 1 || r.Routes[0].Prefix != mustPfx("198.19.1.0/24") || len(r.DHCPDNS) != 0 || len(r.DHCPDomain) != 1 {
		t.Fatalf("pull-filter result %+v", r)
	}
	_, err = Parse("PUSH_REPLY,route 10.0.0.0 255.0.0.0", Filter{PullFilters: []PullFilter{{Action: "reject", Text: "route"}}})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("reject: %v", err)
	}
}

func TestOptionValues(t *testing.T) {
	r, err := Parse("PUSH_REPLY,auth-token SESS_ID_abc,auth-token-user dGVzdHVzZXI=,explicit-exit-notify 3,"+
		"key-derivation tls-ekm,compress stub-v2,block-ipv6,echo hello world,inactive 600,"+
		`dns server 0 address 10.0.0.53:5353 [fd00::53]:53,dns server 0 resolve-domains corp.example,dns server -1 address 10.0.0.1,`+
		"dns server 5 address 9.9.9.9,dns server 5 transport DoT,dhcp-option WINS 10.0.0.2,redirect-gateway ipv6 !ipv4 weird,"+
		`setenv-safe FOO "a b",ping-exit 30`, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.AuthToken != "SESS_ID_abc" || r.AuthTokenUser != "testuser" || r.ExplicitExitNotify != 3 || !r.TLSEKM ||
		r.Compression != CompressionStubV2 || !r.BlockIPv6 || r.InactiveSeconds != 600 || r.PingExit != 30 {
		t.Fatalf("reply %+v", r)
	}
	if !reflect.DeepEqual(r.Unhandled, []string{"echo hello world", "dhcp-option WINS 10.0.0.2", "setenv-safe FOO a b"}) {
		t.Fatalf("unhandled %q", r.Unhandled)
	}
	dns := r.dnsSettings()
	if !reflect.DeepEqual(dns, netconf.DNS{Servers: []netip.AddrPort{ap("10.0.0.1"),
		netip.MustParseAddrPort("10.0.0.53:5353"), netip.MustParseAddrPort("[fd00::53]:53")}}) {
		t.Fatalf("dns %+v", dns)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "weird") {
		t.Fatalf("warnings %q", r.Warnings)
	}
	if _, err := r.NetConfig(); err == nil {
		t.Fatal("NetConfig without an address succeeded")
	}
	r, _ = Parse("PUSH_REPLY,compress,ifconfig-ipv6 fd00::2/64,redirect-gateway ipv6 !ipv4", Filter{})
	if r.Compression != CompressionStub {
		t.Fatalf("bare compress = %q", r.Compression)
	}
	c, err := r.NetConfig()
	if err != nil || c.RedirectIPv4 || !c.RedirectIPv6 {
		t.Fatalf("v6-only %+v %v", c, err)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"comp-lzo", "VORACLE"},
		{"comp-lzo yes", "LZO compression"},
		{"compress lz4-v2", `compression "lz4-v2"`},
		{"compress lzo", "refused"},
		{"topology star", "unknown topology"},
		{"ifconfig 10.0.0.1", "want 2"},
		{"ifconfig 10.0.0.x 255.0.0.0", "not an IPv4"},
		{"topology subnet,ifconfig 10.0.0.2 255.0.255.0", "not contiguous"},
		{"route 10.0.0.0 255.0.0.0 gw.example", "gateway"},
		{"route host.example", "not an IPv4"},
		{"route 10.0.0.0 255.0.0.1", "not contiguous"},
		{"route-ipv6 10.0.0.0/8", "not an IPv6"},
		{"peer-id 16777215", "not a number"},
		{"peer-id -1", "not a number"},
		{"dhcp-option DNS nope", "not an IP"},
		{"dhcp-option DOMAIN bad;name", "bad domain"},
		{"dns server x address 1.1.1.1", "priority"},
		{"dns server 1 address 1.1.1.1:99999", "address[:port]"},
		{"dns server 1 resolve-domains a/b", "bad domain"},
		{"dns search-domains", "incomplete"},
		{"dns server 1 transport QUIC", "plain|DoH|DoT"},
		{"key-derivation prf", "unknown key derivation"},
		{`echo "unterminated`, "unterminated quote"},
		{"push-continuation 3", "bad"},
		{"route 1.2.3.4\t\x01", "control character"},
	}
	for _, c := range cases {
		_, err := Parse("PUSH_REPLY,"+c.in, Filter{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want containing %q", c.in, err, c.want)
		}
	}
	for _, c := range []string{"comp-lzo", "compress lz4-v2"} {
		if _, err := Parse("PUSH_REPLY,"+c, Filter{}); !errors.Is(err, ErrCompressionRefused) {
			t.Errorf("%q: %v, want ErrCompressionRefused", c, err)
		}
	}
	if _, err := Parse("PUSH_REPLY,topology star", Filter{}); errors.Is(err, ErrCompressionRefused) {
		t.Error("a bad topology is not a compression refusal")
	}
	// All problems are reported at once.
	_, err := Parse("PUSH_REPLY,route x,peer-id y", Filter{})
	if err == nil || !strings.Contains(err.Error(), "route x") || !strings.Contains(err.Error(), "peer-id y") {
		t.Errorf("joined errors: %v", err)
	}
}

// Values the client cannot use where skipping keeps the tunnel working
// and secure are skipped with a warning; the rest of the reply applies.
func TestSkippedOptions(t *testing.T) {
	cases := []struct{ in, want string }{
		{"ping x", "not a number"},
		{"ping-restart 1 2 3", "argument"},
		{"inactive -5", "not a number"},
		{"session-timeout soon", "not a number"},
		{"tun-mtu 100", "576"},
		{"explicit-exit-notify many", "not a number"},
		{"route-metric x", "not a number"},
		{"auth-token a b", "exactly one"},
		{"auth-token-user !!", "base64"},
		{"dns server 1 frob 1", "unknown keyword"},
		{"dns foo bar", "unknown sub-option"},
	}
	for _, c := range cases {
		r, err := Parse("PUSH_REPLY,ifconfig 10.8.0.2 10.8.0.1,"+c.in+",ping 7", Filter{})
		if err != nil {
			t.Errorf("%q: %v, want it skipped", c.in, err)
			continue
		}
		if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], c.want) || !strings.Contains(r.Warnings[0], "skipped") {
			t.Errorf("%q: warnings %q, want one containing %q", c.in, r.Warnings, c.want)
		}
		if r.Ping != 7 || r.IfconfigLocal.String() != "10.8.0.2" {
			t.Errorf("%q: the rest of the reply was not applied: %+v", c.in, r)
		}
	}
	// A newer server's dns parts are skipped, the known ones still apply.
	r, err := Parse("PUSH_REPLY,dns server 1 address 10.8.0.1,dns server 1 frob x,dns search-domains example.org", Filter{})
	if err != nil || len(r.DNSServers) != 1 || len(r.DNSServers[0].Addresses) != 1 || len(r.DNSSearchDomains) != 1 {
		t.Errorf("dns with a newer keyword: %+v, %v", r, err)
	}
	// Secrets stay out of warnings.
	r, err = Parse("PUSH_REPLY,auth-token secret1 secret2", Filter{})
	if err != nil || len(r.Warnings) != 1 || strings.Contains(r.Warnings[0], "secret") {
		t.Errorf("auth-token warning leaks or fails: %v %q", err, r.Warnings)
	}
	if _, err := Parse("NOT_A_REPLY,ping 1", Filter{}); err != nil {
		// A bare option list is allowed, so this parses as an unknown option.
		t.Errorf("bare list: %v", err)
	}
	if _, err := Parse("PUSH_REPLYX", Filter{}); err == nil {
		t.Error("PUSH_REPLYX accepted")
	}
	if _, err := Parse("PUSH_REPLY,\xff", Filter{}); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`echo "hello world" x`, []string{"echo", "hello world", "x"}},
		{`x 'a "b' c\ d`, []string{"x", `a "b`, "c d"}},
		{`x "a\"b"`, []string{"x", `a"b`}},
		{`x ""`, []string{"x", ""}},
	}
	for _, c := range cases {
		got, err := tokenize(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("tokenize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestLocalOptions(t *testing.T) {
	a := Assembler{
		Filter: Filter{RouteNoPull: true},
		Local:  []string{"route 10.10.0.0 255.255.0.0", "dhcp-option DNS 10.10.0.53", "topology net30"},
	}
	if done, err := a.Add(strings.TrimRight(testbed, "\x00")); !done || err != nil {
		t.Fatal(done, err)
	}
	r, err := a.Reply()
	if err != nil {
		t.Fatal(err)
	}
	// Local options survive route-nopull; pushed routes and DNS do not;
	// the pushed topology overrides the local one.
	if len(r.Routes) != 1 || r.Routes[0].Prefix != mustPfx("10.10.0.0/16") || len(r.DHCPDNS) != 1 || r.Topology != "subnet" {
		t.Fatalf("reply %+v", r)
	}
	for _, o := range r.Options {
		if strings.HasPrefix(o, "route 10.10.") {
			t.Errorf("local option listed as pushed: %q", o)
		}
	}
	a = Assembler{Local: []string{"route bogus"}}
	a.Add("PUSH_REPLY,ping 1")
	if _, err := a.Reply(); err == nil || !strings.Contains(err.Error(), "profile option") {
		t.Errorf("bad local option: %v", err)
	}
}

func TestProfileCompression(t *testing.T) {
	cases := []struct {
		lzo, comp string
		want      Compression
	}{
		{"", "", CompressionNone},
		{"no", "", CompressionLZOStub},
		{"adaptive", "", CompressionLZOStub},
		{"", "stub", CompressionStub},
		{"", "lz4", CompressionStub},
		{"", "stub-v2", CompressionStubV2},
		{"", "lz4-v2", CompressionStubV2},
		{"", "lzo", CompressionLZOStub},
		{"no", "stub-v2", CompressionStubV2},
	}
	for _, c := range cases {
		if got := ProfileCompression(c.lzo, c.comp); got != c.want {
			t.Errorf("ProfileCompression(%q, %q) = %q, want %q", c.lzo, c.comp, got, c.want)
		}
	}
}

// The redirect-gateway flags and block-ipv6 reach the network
// configuration; route-nopull drops them with the routes.
func TestRoutingFlagsInNetConfig(t *testing.T) {
	base := "PUSH_REPLY,topology subnet,ifconfig 10.8.0.2 255.255.255.0,route-gateway 10.8.0.1,"
	for _, tc := range []struct {
		push string
		f    Filter
		want netconf.Config
	}{
		{"redirect-gateway def1 local block-local bypass-dhcp bypass-dns,block-ipv6", Filter{},
			netconf.Config{RedirectIPv4: true, RedirectLocal: true, BlockLocal: true, BypassDHCP: true, BypassDNS: true, BlockIPv6: true}},
		{"redirect-gateway def1 ipv6", Filter{}, netconf.Config{RedirectIPv4: true, RedirectIPv6: true}},
		{"redirect-gateway ipv6 !ipv4", Filter{}, netconf.Config{RedirectIPv6: true}},
		{"redirect-private local bypass-dns", Filter{}, netconf.Config{RedirectLocal: true, BypassDNS: true}},
		{"redirect-gateway def1 block-local,block-ipv6", Filter{RouteNoPull: true}, netconf.Config{}},
	} {
		r, err := Parse(base+tc.push, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.push, err)
		}
		c, err := r.NetConfig()
		if err != nil {
			t.Fatalf("%s: %v", tc.push, err)
		}
		got := [6]bool{c.RedirectIPv4, c.RedirectIPv6, c.RedirectLocal, c.BlockLocal, c.BypassDHCP || c.BypassDNS, c.BlockIPv6}
		w := tc.want
		want := [6]bool{w.RedirectIPv4, w.RedirectIPv6, w.RedirectLocal, w.BlockLocal, w.BypassDHCP || w.BypassDNS, w.BlockIPv6}
		if got != want || c.BypassDHCP != w.BypassDHCP || c.BypassDNS != w.BypassDNS {
			t.Errorf("%q (nopull %v): got %v, want %v", tc.push, tc.f.RouteNoPull, got, want)
		}
	}
}

// TestDNSOption: the 2.6 "dns" option wins over dhcp-option; the primary
// server entry decides split DNS, DNSSEC and transport; what this client
// does not know is skipped with a warning instead of failing the reply.
func TestDNSOption(t *testing.T) {
	const base = "PUSH_REPLY,topology subnet,ifconfig 10.8.0.2 255.255.255.0,"
	cases := []struct {
		name, push string
		want       netconf.DNS
		warnings   int
	}{
		{"dhcp-option", "dhcp-option DNS 10.8.0.1,dhcp-option DNS6 fd00:8::1,dhcp-option DOMAIN corp.example," +
			"dhcp-option DOMAIN-SEARCH eu.corp.example,dhcp-option ADAPTER_DOMAIN_SUFFIX ad.example,dhcp-option DOMAIN corp.example",
			netconf.DNS{Servers: []netip.AddrPort{ap("10.8.0.1"), ap("fd00:8::1")},
				Search: []string{"corp.example", "ad.example", "eu.corp.example"}}, 0},
		{"split", "dhcp-option DNS 10.8.0.9,dns server 1 address 10.8.0.1:5353 [fd00:8::1]:53," +
			"dns server 1 resolve-domains corp.example ~intra.example,dns search-domains corp.example,dns server 1 dnssec optional",
			netconf.DNS{Servers: []netip.AddrPort{netip.MustParseAddrPort("10.8.0.1:5353"), netip.MustParseAddrPort("[fd00:8::1]:53")},
				Search: []string{"corp.example"}, Routing: []string{"corp.example", "intra.example"}, DNSSEC: "optional"}, 0},
		{"doh skipped, dot kept", "dns server 1 address 10.8.0.1,dns server 1 transport DoH," +
			"dns server 2 address 10.8.0.2:853,dns server 2 transport DoT,dns server 2 sni dns.corp.example," +
			"dns server 3 address 10.8.0.3,dns server 4 address 10.8.0.4,dns server 4 transport DoT",
			netconf.DNS{Servers: []netip.AddrPort{netip.MustParseAddrPort("10.8.0.2:853"), ap("10.8.0.4")},
				Transport: "dot", SNI: "dns.corp.example"}, 0},
		{"unknown sub-options", "dns server 1 address 10.8.0.1,dns server 1 frob 1,dns exclude-domains x.example,dns future",
			netconf.DNS{Servers: []netip.AddrPort{ap("10.8.0.1")}}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse(base+c.push, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Warnings) != c.warnings {
				t.Errorf("warnings %q, want %d", r.Warnings, c.warnings)
			}
			cfg, err := r.NetConfig()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.DNS, c.want) {
				t.Errorf("dns\n got %+v\nwant %+v", cfg.DNS, c.want)
			}
		})
	}
}
