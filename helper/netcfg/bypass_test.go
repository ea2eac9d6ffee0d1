package netcfg

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

func TestBypassRoutes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	resolv := write("resolv.conf", "# comment\nnameserver 192.0.2.53\nnameserver 127.0.0.53\nnameserver 2001:db8::53\nnameserver bogus\nsearch lan\n")
	write("networkd-2", "# This is private data.\nADDRESS=192.168.1.20\nSERVER_ADDRESS=192.168.1.1\n")
	write("dhclient.leases", "lease {\n  interface \"eth0\";\n  option dhcp-server-identifier 10.0.0.1;\n}\n")
	oldResolv, oldGlobs := resolvConfPath, leaseGlobs
	resolvConfPath, leaseGlobs = resolv, []string{filepath.Join(dir, "networkd-*"), filepath.Join(dir, "*.leases")}
	t.Cleanup(func() { resolvConfPath, leaseGlobs = oldResolv, oldGlobs })

	cfg := netconf.Config{BypassDNS: true, BypassDHCP: true,
		Routes: []netconf.Route{{Prefix: netip.MustParsePrefix("192.0.2.53/32"), Exclude: true}}}
	(&Service{}).addBypassRoutes(&cfg, slog.New(slog.DiscardHandler))
	var got []string
	for _, r := range cfg.Routes {
		if !r.Exclude {
			t.Errorf("bypass route %v not excluded", r.Prefix)
		}
		got = append(got, r.Prefix.String())
	}
	want := []string{"192.0.2.53/32", "2001:db8::53/128", "192.168.1.1/32", "10.0.0.1/32"}
	if !slices.Equal(got, want) {
		t.Fatalf("routes %v, want %v (loopback and bogus left out, no duplicates)", got, want)
	}
}
