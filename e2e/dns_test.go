package e2e

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The test-bed server pushes "dhcp-option DNS/DOMAIN" and the 2.6 "dns
// server 1 address 198.19.0.1" / "dns search-domains testbed.example"; the
// tests add more "dns" lines. A DNS responder on the server's tunnel
// address answers for the VPN, one on its veth address plays the LAN's.
var (
	vpnAnswer = netip.MustParseAddr("198.19.1.80")
	lanAnswer = netip.MustParseAddr("198.18.0.80")
)

func dnsAnswers(a netip.Addr) map[string]netip.Addr {
	return map[string]netip.Addr{"testbed.example": a, "corp.example": a, "example.com": a}
}

// netcfgGlobal reads the netcfg manager's global_dns_* properties.
func netcfgGlobal(t *testing.T, st *testbed.Stack) (servers, search []string) {
	t.Helper()
	obj := st.Conn.Object(api.ServiceNetCfg, api.PathNetCfg)
	for _, p := range []struct {
		name string
		out  *[]string
	}{{"global_dns_servers", &servers}, {"global_dns_search", &search}} {
		v, err := obj.GetProperty(api.InterfaceNetCfg + "." + p.name)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		*p.out, _ = v.Value().([]string)
	}
	return servers, search
}

// dnsChanges subscribes to netcfg's DNS NetworkChange signals.
func dnsChanges(t *testing.T, st *testbed.Stack) chan *dbus.Signal {
	t.Helper()
	conn, err := dbus.Connect(st.Bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan *dbus.Signal, 64)
	conn.Signal(ch)
	filter := api.NetCfgDNSServerAdded | api.NetCfgDNSServerRemoved | api.NetCfgDNSSearchAdded | api.NetCfgDNSSearchRemoved
	if err := conn.Object(api.ServiceNetCfg, api.PathNetCfg).Call(api.InterfaceNetCfg+".NotificationSubscribe", 0, uint32(filter)).Err; err != nil {
		t.Fatal(err)
	}
	return ch
}

// waitDNSChange waits for a NetworkChange of typ whose details[key] is val.
func waitDNSChange(t *testing.T, ch chan *dbus.Signal, typ api.NetCfgChangeType, key, val string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s := <-ch:
			if len(s.Body) == 3 && s.Body[0] == uint32(typ) {
				if d, _ := s.Body[2].(map[string]string); d[key] == val {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no NetworkChange %v with %s=%s", typ, key, val)
		}
	}
}

func disconnect(t *testing.T, st *testbed.Stack, w *testbed.Watcher, name string, path dbus.ObjectPath) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	disconnectAndWait(ctx, t, st, w, path, "--config", name)
}

// disconnectAndWait runs `ovpn3 session-manage <sel...> --disconnect` and
// waits for session path's SESS_DESTROYED and a clean client namespace.
func disconnectAndWait(ctx context.Context, t *testing.T, st *testbed.Stack, w *testbed.Watcher, path dbus.ObjectPath, sel ...string) {
	t.Helper()
	if _, err := st.CLI(ctx, append(append([]string{"session-manage"}, sel...), "--disconnect")...); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	waitClean(t, st.Pair, 10*time.Second)
}

// TestDNSPushedResolvConf: without systemd-resolved the pushed
// "dhcp-option" settings go into resolv.conf (the stack's own file, never the
// host's), glibc's resolver in the client namespace finds a name through
// the pushed search domain and the VPN's server, netcfg reports what was
// applied, and the original file is back byte for byte after disconnect.
func TestDNSPushedResolvConf(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	unshare := testenv.RequireCommand(t, "unshare")
	getent := testenv.RequireCommand(t, "getent")
	st := testbed.NewStack(t, bin, testbed.VariantA, func(o *testbed.StackOptions) {
		o.Server.Extra = []string{`push "dhcp-option DOMAIN-SEARCH corp.example"`}
	})
	vpn := testbed.StartDNSServer(t, st.Pair.ServerNS, netip.AddrPortFrom(netip.MustParseAddr(testbed.TunnelServer4), 0), dnsAnswers(vpnAnswer))
	changes := dnsChanges(t, st)
	w := watch(t, st)
	// The profile drops the pushed "dns" lines, so the "dhcp-option" ones
	// (DNS, DOMAIN, DOMAIN-SEARCH) are what is applied.
	importProfile(t, st, testbed.VariantA, "dns-rc", `pull-filter ignore "dns "`)
	path := connect(t, st, w, "dns-rc")

	waitDNSChange(t, changes, api.NetCfgDNSServerAdded, "dns_server", testbed.TunnelServer4)
	waitDNSChange(t, changes, api.NetCfgDNSSearchAdded, "search_domain", "corp.example")
	text, err := os.ReadFile(st.ResolvConf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "\nnameserver 198.19.0.1\nsearch testbed.example corp.example lan.example\n") ||
		strings.Contains(string(text), "192.0.2.53") {
		t.Errorf("resolv.conf while connected:\n%s", text)
	}
	servers, search := netcfgGlobal(t, st)
	if !slices.Equal(servers, []string{testbed.TunnelServer4}) || !slices.Equal(search, []string{"testbed.example", "corp.example"}) {
		t.Errorf("global_dns_servers %q, global_dns_search %q", servers, search)
	}

	// glibc's resolver, with the stack's file as its /etc/resolv.conf (in
	// a mount namespace of its own): "www" + search domain, through the
	// tunnel to the VPN's server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testbed.Run(ctx, st.Pair.ClientNS, unshare, "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" "$(readlink -f /etc/resolv.conf)" && exec "$1" ahostsv4 www`, st.ResolvConf, getent)
	if err != nil || !strings.Contains(out, vpnAnswer.String()) {
		t.Errorf("getent ahostsv4 www: %v\n%s", err, out)
	}
	if !vpn.Asked("www.testbed.example") {
		t.Errorf("the VPN's DNS server was not asked for www.testbed.example: %q", vpn.Queries())
	}

	disconnect(t, st, w, "dns-rc", path)
	waitDNSChange(t, changes, api.NetCfgDNSServerRemoved, "dns_server", testbed.TunnelServer4)
	if text, _ := os.ReadFile(st.ResolvConf); string(text) != testbed.StackResolvConf {
		t.Errorf("resolv.conf after disconnect:\n%q\nwant\n%q", text, testbed.StackResolvConf)
	}
	if servers, search := netcfgGlobal(t, st); len(servers)+len(search) != 0 {
		t.Errorf("after disconnect: global_dns_servers %q, global_dns_search %q", servers, search)
	}
}

// TestDNSPushedResolved: with a real systemd-resolved in the client
// namespace, the 2.6 "dns" option: a server pushing "dns server 1
// resolve-domains corp.example"
// gets split DNS (only corp.example through the tunnel), one pushing no
// resolve-domains takes all DNS (nothing reaches the LAN server); after
// disconnect the LAN resolver answers everything again and resolv.conf
// was never touched.
func TestDNSPushedResolved(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	for _, tc := range []struct {
		name  string
		extra []string
		// config-manage arguments (overrides) after the import
		manage []string
		// which server answers a name under corp.example and one under
		// example.com while connected (testbed.example, the pushed
		// search domain, always goes to the VPN)
		corp, other string
		search      []string
		// resolved's DNSSEC and DNSOverTLS on the tunnel's link; "" not
		// checked (unset per link shows resolved's global mode)
		dnssec, dot string
	}{
		{"split", []string{`push "dns server 1 resolve-domains corp.example"`, `push "dns server 1 dnssec optional"`,
			`push "dns server 1 transport plain"`}, nil, "vpn", "lan", []string{"testbed.example", "~corp.example"}, "allow-downgrade", "no"},
		{"full", nil, nil, "vpn", "vpn", []string{"testbed.example", "~."}, "", ""},
		// The dns-scope override keeps a full-DNS tunnel to its domains.
		{"full with dns-scope tunnel", nil, []string{"--dns-scope", "tunnel"}, "lan", "lan", []string{"testbed.example"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := testbed.NewResolved(t)
			st := testbed.NewStack(t, bin, testbed.VariantA, func(o *testbed.StackOptions) {
				o.Server.Extra = tc.extra
				o.HelperArgs = []string{"--resolved-bus", res.BusAddress}
			})
			lanAddr := netip.MustParseAddr(testbed.ServerIP4)
			lan := testbed.StartDNSServer(t, st.Pair.ServerNS, netip.AddrPortFrom(lanAddr, 0), dnsAnswers(lanAnswer))
			vpn := testbed.StartDNSServer(t, st.Pair.ServerNS, netip.AddrPortFrom(netip.MustParseAddr(testbed.TunnelServer4), 0), dnsAnswers(vpnAnswer))
			res.Start(t, st.Pair.ClientNS, lanAddr)
			// The namespace's resolv.conf sends lookups to resolved's stub,
			// as on a system using resolved (else the helper would rightly
			// keep to the file).
			const stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
			if err := os.WriteFile(st.ResolvConf, []byte(stub), 0o644); err != nil {
				t.Fatal(err)
			}
			from := func(name string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				addrs, err := res.ResolveHostname(ctx, name)
				switch {
				case err != nil:
					return "error " + err.Error()
				case slices.Equal(addrs, []netip.Addr{vpnAnswer}):
					return "vpn"
				case slices.Equal(addrs, []netip.Addr{lanAnswer}):
					return "lan"
				}
				return "unexpected answer"
			}
			if got := from("a.corp.example"); got != "lan" {
				t.Fatalf("before connecting: a.corp.example from %s", got)
			}

			w := watch(t, st)
			importProfile(t, st, testbed.VariantA, "dns-res")
			if tc.manage != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := st.CLI(ctx, append([]string{"config-manage", "--config", "dns-res"}, tc.manage...)...); err != nil {
					t.Fatal(err)
				}
			}
			path := connect(t, st, w, "dns-res")
			if got := from("b.testbed.example"); got != "vpn" {
				t.Errorf("connected: b.testbed.example from %s, want vpn", got)
			}
			if got := from("b.corp.example"); got != tc.corp {
				t.Errorf("connected: b.corp.example from %s, want %s", got, tc.corp)
			}
			if got := from("b.example.com"); got != tc.other {
				t.Errorf("connected: b.example.com from %s, want %s", got, tc.other)
			}
			if tc.corp == "vpn" && lan.Asked("b.corp.example") {
				t.Error("b.corp.example leaked to the LAN server")
			}
			if tc.other == "vpn" && lan.Asked("b.example.com") {
				t.Error("full DNS: b.example.com leaked to the LAN server")
			}
			if tc.corp == "vpn" && !vpn.Asked("b.corp.example") {
				t.Errorf("the VPN's server never saw b.corp.example: %q", vpn.Queries())
			}
			servers, search := netcfgGlobal(t, st)
			if !slices.Equal(servers, []string{testbed.TunnelServer4}) || !slices.Equal(search, tc.search) {
				t.Errorf("global_dns_servers %q, global_dns_search %q, want %q", servers, search, tc.search)
			}
			if tc.dnssec != "" {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				v, err := st.SessionProperty(ctx, path, "device_name")
				if err != nil {
					t.Fatal(err)
				}
				dev, _ := v.Value().(string)
				out, err := testbed.Run(ctx, st.Pair.ClientNS, "cat", "/sys/class/net/"+dev+"/ifindex")
				if err != nil {
					t.Fatal(err)
				}
				ifindex, _ := strconv.Atoi(strings.TrimSpace(out))
				for prop, want := range map[string]string{"DNSSEC": tc.dnssec, "DNSOverTLS": tc.dot} {
					v, err := res.LinkProperty(ctx, ifindex, prop)
					if got, _ := v.Value().(string); err != nil || got != want {
						t.Errorf("resolved's %s on %s: %q (%v), want %q", prop, dev, got, err, want)
					}
				}
			}

			disconnect(t, st, w, "dns-res", path)
			for _, name := range []string{"c.corp.example", "c.example.com"} {
				if got := from(name); got != "lan" {
					t.Errorf("after disconnect: %s from %s, want lan", name, got)
				}
			}
			if text, _ := os.ReadFile(st.ResolvConf); string(text) != stub {
				t.Errorf("resolv.conf changed although resolved runs:\n%s", text)
			}
		})
	}
}

// TestDNSSetupDisabled: with the dns-setup-disabled override the pushed DNS
// settings are not applied: resolv.conf stays as it was and netcfg reports
// nothing.
func TestDNSSetupDisabled(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "dns-off")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := st.CLI(ctx, "config-manage", "--config", "dns-off", "--dns-setup-disabled", "true"); err != nil {
		t.Fatal(err)
	}
	path := connect(t, st, w, "dns-off")
	if text, _ := os.ReadFile(st.ResolvConf); string(text) != testbed.StackResolvConf {
		t.Errorf("resolv.conf changed with dns-setup-disabled:\n%s", text)
	}
	if servers, search := netcfgGlobal(t, st); len(servers)+len(search) != 0 {
		t.Errorf("dns-setup-disabled: global_dns_servers %q, global_dns_search %q", servers, search)
	}
	disconnect(t, st, w, "dns-off", path)
}
