package netcfg

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// collectChanges gathers (type, details) of NetworkChange signals.
type change struct {
	typ     api.NetCfgChangeType
	dev     string
	details map[string]string
}

func subscribe(t *testing.T, f *fixture, filter api.NetCfgChangeType) chan *dbus.Signal {
	t.Helper()
	watcher := dial(t, f.bus)
	sigs := make(chan *dbus.Signal, 256)
	watcher.Signal(sigs)
	if err := watcher.Object(api.ServiceNetCfg, api.PathNetCfg).Call(api.InterfaceNetCfg+".NotificationSubscribe", 0, uint32(filter)).Err; err != nil {
		t.Fatal(err)
	}
	return sigs
}

// waitChanges reads NetworkChange signals until n arrived.
func waitChanges(t *testing.T, ch chan *dbus.Signal, n int) []change {
	t.Helper()
	var out []change
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case s := <-ch:
			if s.Name != api.InterfaceNetCfg+".NetworkChange" || len(s.Body) != 3 {
				continue
			}
			out = append(out, change{api.NetCfgChangeType(s.Body[0].(uint32)), s.Body[1].(string), s.Body[2].(map[string]string)})
		case <-timeout:
			t.Fatalf("got %d NetworkChange signals, want %d: %+v", len(out), n, out)
		}
	}
	return out
}

func detailsOf(cs []change, typ api.NetCfgChangeType, key string) []string {
	var out []string
	for _, c := range cs {
		if c.typ == typ {
			out = append(out, c.details[key])
		}
	}
	return out
}

// TestDNSThroughResolvConf: with the resolv.conf backend, Establish writes
// the tunnel's servers and search domains, global_dns_* and NetworkChange
// report them, and Destroy puts the original file back byte for byte.
func TestDNSThroughResolvConf(t *testing.T) {
	f := newFixture(t, "ncdns")
	const orig = "# LAN\nnameserver 10.99.0.254\nsearch lan.example\n"
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	m := dns.NewManager(dns.NewResolvConf(path, t.TempDir(), slog.New(slog.NewTextHandler(testWriter{t}, nil))), nil)
	f.svc.SetDNS(m)
	sigs := subscribe(t, f, api.NetCfgDNSServerAdded|api.NetCfgDNSServerRemoved|api.NetCfgDNSSearchAdded|api.NetCfgDNSSearchRemoved)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := testCfg
	cfg.DNS = netconf.DNS{Servers: []netip.AddrPort{netip.MustParseAddrPort("10.8.0.1:53"), netip.AddrPortFrom(ma("fd00:8::1"), 0)},
		Search: []string{"vpn.example"}}
	tun, path1, name, err := f.client.Establish(ctx, "dns1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "nameserver 10.8.0.1\nnameserver fd00:8::1\nsearch vpn.example lan.example\n") ||
		strings.Contains(string(got), "10.99.0.254") {
		t.Errorf("resolv.conf with the tunnel up:\n%s", got)
	}
	cs := waitChanges(t, sigs, 3)
	if s := detailsOf(cs, api.NetCfgDNSServerAdded, "dns_server"); !slices.Equal(s, []string{"10.8.0.1", "fd00:8::1"}) {
		t.Errorf("DNS_SERVER_ADDED %v", s)
	}
	if s := detailsOf(cs, api.NetCfgDNSSearchAdded, "search_domain"); !slices.Equal(s, []string{"vpn.example"}) {
		t.Errorf("DNS_SEARCH_ADDED %v", s)
	}
	if cs[0].dev != name {
		t.Errorf("device %q, want %q", cs[0].dev, name)
	}
	mgr := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg)
	checkProp(t, mgr, "global_dns_servers", []string{"10.8.0.1", "fd00:8::1"})
	checkProp(t, mgr, "global_dns_search", []string{"vpn.example"})

	if err := f.client.Destroy(ctx, path1); err != nil {
		t.Fatal(err)
	}
	cs = waitChanges(t, sigs, 3)
	if s := detailsOf(cs, api.NetCfgDNSServerRemoved, "dns_server"); len(s) != 2 {
		t.Errorf("DNS_SERVER_REMOVED %v", s)
	}
	if got, _ := os.ReadFile(path); string(got) != orig {
		t.Errorf("not restored:\n%s", got)
	}
	checkProp(t, mgr, "global_dns_servers", []string{})
	checkProp(t, mgr, "global_dns_search", []string{})
}

// TestDNSSplitAndRefused: split DNS travels as "~domain", DNSSEC and the
// transport as their methods; DoH, which no backend speaks, fails
// Establish and leaves nothing behind.
func TestDNSSplitAndRefused(t *testing.T) {
	f := newFixture(t, "ncdns")
	path := filepath.Join(t.TempDir(), "resolv.conf")
	m := dns.NewManager(dns.NewResolvConf(path, t.TempDir(), slog.New(slog.NewTextHandler(testWriter{t}, nil))), nil)
	f.svc.SetDNS(m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var devPath dbus.ObjectPath
	mgr := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg)
	if err := mgr.CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, "dns2").Store(&devPath); err != nil {
		t.Fatal(err)
	}
	dev := f.conn.Object(api.ServiceNetCfg, devPath)
	call := func(m string, args ...any) error {
		return dev.CallWithContext(ctx, api.InterfaceNetCfg+"."+m, 0, args...).Err
	}
	wantNetcfgError(t, call("AddDNSSearch", []string{"~bad/name"}), "Invalid search domain '~bad/name'")
	wantNetcfgError(t, call("AddDNS", []string{"10.8.0.1#bad name"}), "Invalid DNS server address")
	for _, c := range [][]any{
		{"AddIPAddress", "10.8.0.2", uint32(24), "10.8.0.1", false},
		{"AddDNS", []string{"10.8.0.1:5353", "[fd00:8::1]:53#dns.vpn.example"}},
		{"AddDNSSearch", []string{"vpn.example", "~corp.example"}},
		{"SetDNSSEC", "yes"},
		{"SetDNSTransport", "doh"},
	} {
		if err := call(c[0].(string), c[1:]...); err != nil {
			t.Fatalf("%s: %v", c[0], err)
		}
	}
	checkProp(t, dev, "dns_name_servers", []string{"10.8.0.1:5353", "[fd00:8::1]:53#dns.vpn.example"})
	checkProp(t, dev, "dns_search_domains", []string{"vpn.example", "~corp.example"})
	err := call("Establish")
	wantNetcfgError(t, err, "DNS over HTTPS is not supported")
	if links := f.tunLinks(t); len(links) != 0 {
		t.Errorf("devices left after a refused Establish: %v", links)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("resolv.conf written for a refused device: %v", err)
	}
	if err := call("Destroy"); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
}

// TestDNSTwoDevices: two tunnels with DNS through one resolv.conf; the
// first one's disconnect leaves the second's settings in place, the second
// one's brings the original back, and global_dns_* follow.
func TestDNSTwoDevices(t *testing.T) {
	f := newFixture(t, "ncdn2")
	const orig = "nameserver 10.99.0.254\n"
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	f.svc.SetDNS(dns.NewManager(dns.NewResolvConf(path, t.TempDir(), slog.New(slog.NewTextHandler(testWriter{t}, nil))), nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mgr := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg)

	one := netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24")},
		DNS: netconf.DNS{Servers: []netip.AddrPort{netip.AddrPortFrom(ma("10.8.0.1"), 0)}, Search: []string{"one.example"}}}
	two := netconf.Config{Addresses: []netip.Prefix{mp("10.9.0.2/24")},
		DNS: netconf.DNS{Servers: []netip.AddrPort{netip.AddrPortFrom(ma("10.9.0.1"), 0)}, Routing: []string{"two.example"}}}
	tun1, p1, _, err := f.client.Establish(ctx, "dnsone", one)
	if err != nil {
		t.Fatal(err)
	}
	defer tun1.Close()
	tun2, p2, _, err := f.client.Establish(ctx, "dnstwo", two)
	if err != nil {
		t.Fatal(err)
	}
	defer tun2.Close()
	checkProp(t, mgr, "global_dns_servers", []string{"10.8.0.1", "10.9.0.1"})
	checkProp(t, mgr, "global_dns_search", []string{"one.example"})

	if err := f.client.Destroy(ctx, p1); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "nameserver 10.9.0.1\nnameserver 10.99.0.254\n") || strings.Contains(string(got), "10.8.0.1") {
		t.Errorf("after the first device went:\n%s", got)
	}
	checkProp(t, mgr, "global_dns_servers", []string{"10.9.0.1"})
	if err := f.client.Destroy(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != orig {
		t.Errorf("after both went:\n%s", got)
	}
	checkProp(t, mgr, "global_dns_servers", []string{})
}
